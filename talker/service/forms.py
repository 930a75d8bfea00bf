"""Form fields -> MakeOptions fields: the one place where the API checks render options.

Every ``MakeOptions`` field except the server's own (image, audio, out, force, checkpoints) can be
sent as a form field (``size=512``, ``still=true``...); ``MakeOptions.validate`` judges the values,
so the API accepts exactly what ``talker make`` accepts and answers with the same messages.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from talker.errors import OptionError
from talker.options import MakeOptions

_SERVER_FIELDS = ("image", "audio", "out", "force", "checkpoints", "extra")
_SCALARS = ("int", "float", "bool", "str")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _kind(annotation: str) -> str:
    """'int', 'float', 'bool' or 'str' from a field's annotation text ('int | None' -> 'int')."""
    return annotation.split(" |")[0].strip()


# options that decide how the server's hardware is used: a tenant may set them only when its
# allow_options lists them
OPERATOR_OPTIONS = ("device", "precision", "compile", "batch_size")

# the options a form may set: the scalar MakeOptions fields that are not the server's own
OPTION_FIELDS = {f.name: f for f in fields(MakeOptions) if f.name not in _SERVER_FIELDS and _kind(f.type) in _SCALARS}


def options_from_form(form: dict, has_audio: bool, has_image: bool = True) -> dict:
    """The MakeOptions fields named in ``form`` (str values), converted and validated.

    Raises OptionError naming the field, for unknown names, values of the wrong type, and every
    check of ``MakeOptions.validate``.
    """
    values = {}
    for name, raw in form.items():
        key = name.replace("-", "_")
        if key not in OPTION_FIELDS:
            raise OptionError(f"unknown option {name!r}; the options are: {', '.join(OPTION_FIELDS)}")
        kind, text = _kind(OPTION_FIELDS[key].type), str(raw).strip()
        try:
            if kind == "bool":
                values[key] = parse_bool(name, text)
            elif text == "" and "None" in OPTION_FIELDS[key].type:
                values[key] = None
            else:
                values[key] = {"int": int, "float": float}.get(kind, str)(text)
        except ValueError:
            raise OptionError(f"option {name} must be {'true or false' if kind == 'bool' else 'a ' + kind}, not {text!r}") from None
    if any(sep in str(values.get("preset") or "") for sep in ("/", "\\")):
        raise OptionError("option preset must be a preset name; files on the server cannot be named")
    MakeOptions(
        image=Path("portrait") if has_image else None, audio=Path("speech") if has_audio else None, **values
    ).validate()
    return values


def parse_bool(name: str, text: str) -> bool:
    """A form's true/false value (1/0, true/false, yes/no, on/off; empty is false); OptionError otherwise."""
    if text.strip().lower() not in _TRUE + _FALSE:
        raise OptionError(f"option {name} must be true or false, not {text.strip()!r}")
    return text.strip().lower() in _TRUE


def openapi_schema(files: dict[str, str], extra: dict[str, dict]) -> dict:
    """The multipart/form-data schema of a request with ``files`` (name -> description), the
    render options and ``extra`` fields, for the OpenAPI page (/docs)."""
    props = {name: {"type": "string", "format": "binary", "description": text} for name, text in files.items()}
    types = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}
    for name, f in OPTION_FIELDS.items():
        props[name] = {"type": types[_kind(f.type)], "default": f.default}
    props |= extra
    return {"requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object", "properties": props}}}}}
