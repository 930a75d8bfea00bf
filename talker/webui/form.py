"""The web form's table of ``MakeOptions`` fields, and the mapping from the submitted values back to options.

Every field of :class:`talker.options.MakeOptions` the user can set in the page has one
:class:`FormField` row in ``FIELDS``: which accordion it sits in, its label and help text, and the
widget's range where it is a slider. Defaults come from ``MakeOptions`` itself and the choices from
the constants ``talker.make`` uses (``talker.options``, ``talker.types``), so the page, the CLI and
``MakeOptions.validate`` cannot drift apart. ``MakeOptions.validate`` stays the one place that
validates; the widgets only make the common values easy to pick.

A field added to ``MakeOptions`` later needs one row here. Until it has one, ``form_fields()`` still
shows it (in the "more options" accordion, as a text box, number or check box after its default's
type), so nothing a render can take is ever missing from the page.

Nothing here imports Gradio: the table and the mapping are plain data, testable without a browser.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Callable

from talker.options import BACKENDS, DEVICES, ENHANCERS, PRECISIONS, SEED_MAX, MakeOptions
from talker.types import PREPROCESS_MODES

GROUPS = ("face", "speech and motion", "backend and compute", "enhancement", "more options")
"""The accordions of the options, in page order (the inputs come before them, outside the table)."""

INPUT_FIELDS = ("image", "audio", "text")
"""MakeOptions fields filled from the page's input widgets (portrait, voice, script), not from the table."""

SERVER_FIELDS = ("out", "force", "checkpoints", "extra", "compile", "portrait")
"""MakeOptions fields the page leaves to the server: the output file (the session's), file-system
paths on the server and free-form extras, ``compile`` (a GPU speed switch the preset sets) and
``portrait`` (the Stable Diffusion stage, an object of its own)."""


@dataclass(frozen=True)
class FormField:
    """One row of the form: a ``MakeOptions`` field and how it is shown.

    name: the MakeOptions field (its default is the widget's initial value).
    group: the accordion it sits in, one of GROUPS.
    label, info: the widget's label and the help line under it (the CLI's --help wording).
    choices: the allowed values, for a drop-down; a callable is called when the page is built
        (for lists read from disk, such as preset names).
    slider: (minimum, maximum, step) for a slider; ``MakeOptions.validate`` holds the real limits.
    bounds: (minimum, maximum) a number box accepts (None: any number).
    optional: the field may be left empty (None), as --face-index may; an optional drop-down
        offers '' (shown as "none") for None.
    """

    name: str
    group: str
    label: str
    info: str = ""
    choices: tuple | Callable[[], tuple] | None = None
    slider: tuple[float, float, float] | None = None
    bounds: tuple[float, float] | None = None
    optional: bool = False

    @property
    def default(self) -> Any:
        """The MakeOptions default of this field (what ``talker make`` uses when the flag is not given)."""
        return option_defaults()[self.name]

    def choice_values(self) -> tuple | None:
        """The drop-down's values, or None when the field is not a choice."""
        return self.choices() if callable(self.choices) else self.choices

    @property
    def kind(self) -> str:
        """The widget: 'dropdown', 'slider', 'checkbox', 'number' (int or float) or 'text'."""
        if self.choices is not None:
            return "dropdown"
        if self.slider is not None:
            return "slider"
        default = self.default
        if isinstance(default, bool):
            return "checkbox"
        if isinstance(default, (int, float)) or self.optional:
            return "number"
        return "text"


def _preset_choices() -> tuple[str, ...]:
    """'' (no preset), 'auto', then the make presets found (shipped and the user's)."""
    from talker.make_presets import AUTO, KIND
    from talker.presets import preset_names

    return ("", AUTO, *preset_names(KIND))


FIELDS: tuple[FormField, ...] = (
    # face
    FormField("preprocess", "face", "preprocess", "crop: the face; extcrop: a larger crop; resize: the whole "
              "picture; full/extfull: animate the face inside the whole picture", choices=PREPROCESS_MODES),
    FormField("size", "face", "face size (pixels)", "face resolution", choices=(256, 512)),
    FormField("face_index", "face", "face index", "which face to animate when there are several (0 = largest; "
              "empty: the only face)", bounds=(0, 99), optional=True),
    # speech and motion
    FormField("pose_style", "speech and motion", "pose style", "head-motion style, 0-45", slider=(0, 45, 1)),
    FormField("still", "speech and motion", "still", "keep the head still"),
    FormField("blink_rate", "speech and motion", "blink rate", "blinks per minute", slider=(0, 60, 1)),
    FormField("no_blink", "speech and motion", "no blink", "never blink"),
    FormField("head_motion", "speech and motion", "head motion", "scale of head motion (0 = still)",
              slider=(0, 5, 0.05)),
    FormField("expression_scale", "speech and motion", "expression scale", "scale of mouth and brow motion",
              slider=(0, 5, 0.05)),
    FormField("seed", "speech and motion", "seed", "the same seed gives the same video",
              bounds=(0, SEED_MAX)),
    FormField("language", "speech and motion", "language", "'auto' or 'en' use English phones; any other value "
              "drives the mouth from loudness and formants"),
    # backend and compute
    FormField("backend", "backend and compute", "backend", "embedded needs no model files; sadtalker needs the "
              "official checkpoints; auto picks sadtalker when they verify", choices=BACKENDS),
    FormField("preset", "backend and compute", "preset", "speed and memory preset (auto: picked from the free GPU "
              "memory); the values you change here win over it", choices=_preset_choices, optional=True),
    FormField("device", "backend and compute", "device", choices=DEVICES),
    FormField("precision", "backend and compute", "precision", "fp16/bf16 need a CUDA GPU", choices=PRECISIONS),
    FormField("batch_size", "backend and compute", "batch size", "frames rendered at once",
              bounds=(1, 256)),
    # enhancement
    FormField("enhancer", "enhancement", "enhancer", "face restoration of every frame", choices=ENHANCERS),
    FormField("enhance_strength", "enhancement", "strength", "0 = rendered face, 1 = fully restored",
              slider=(0, 1, 0.05)),
)


def option_defaults() -> dict[str, Any]:
    """{field name: default} of every MakeOptions field that has a plain default."""
    return {f.name: f.default for f in fields(MakeOptions) if f.default is not MISSING}


def form_fields() -> list[FormField]:
    """The rows shown in the page: FIELDS, then a generic row for any MakeOptions field without one.

    A field without a row goes to "more options" and is shown after its default's type (a field
    whose default is None is shown as an optional text box).
    """
    rows = list(FIELDS)
    named = {row.name for row in rows} | set(INPUT_FIELDS) | set(SERVER_FIELDS)
    for f in fields(MakeOptions):
        if f.name not in named:
            rows.append(FormField(f.name, "more options", f.name.replace("_", " "), optional=f.default is None))
    return rows


def build_options(
    values: dict[str, Any],
    image: str | Path | None,
    audio: str | Path | None,
    text: str | None,
    out: Path,
) -> MakeOptions:
    """The MakeOptions of one submission, not yet validated (``pipeline.make`` validates).

    values: {field name: widget value} for the rows of ``form_fields()``; a missing name keeps the
        MakeOptions default. Empty optional values become None; numbers from number boxes (which
        the browser sends as floats) become ints where the default is an int.
    image, audio: the uploaded files (None when not given); text: the script or transcript ('' = none).
    out: the MP4 to write (in the session's folder); it is written with ``force`` off.
    """
    defaults = option_defaults()
    chosen: dict[str, Any] = {}
    for row in form_fields():
        if row.name not in values:
            continue
        value = values[row.name]
        if value is None or (isinstance(value, str) and not value.strip()):
            if row.optional:
                chosen[row.name] = None
            continue  # an emptied box keeps the default
        default = defaults[row.name]
        if isinstance(default, bool):
            value = bool(value)
        elif isinstance(value, float) and value.is_integer() and (isinstance(default, int) or row.optional):
            value = int(value)
        elif isinstance(default, float):
            value = float(value)
        elif isinstance(value, str):
            value = value.strip()
        chosen[row.name] = value
    text = (text or "").strip() or None
    return MakeOptions(image=image, audio=audio, text=text, out=out, **chosen)
