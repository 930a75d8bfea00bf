"""Batch manifests: CSV (a header row) or JSONL (one object a line), one job per row.

Columns: ``avatar`` (the file name of an uploaded portrait), ``text`` (the script, spoken by
espeak-ng, or the transcript of ``audio``), ``audio`` (the file name of an uploaded recording),
and any render option (``size``, ``still``, ``seed``...). A row without ``avatar`` is made with
every uploaded portrait, so N scripts and M portraits give N x M jobs.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

from talker.errors import OptionError
from talker.service.forms import options_from_form


@dataclass
class BatchRow:
    """One job of a batch: its label, portrait and recording (upload names), validated options."""

    name: str
    avatar: str
    audio: str | None
    options: dict = field(default_factory=dict)


def parse_manifest(data: bytes, avatars: list[str], recordings: list[str], max_rows: int) -> list[BatchRow]:
    """The jobs of a manifest; OptionError naming the line for anything wrong."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise OptionError("the manifest must be UTF-8 text (CSV with a header row, or JSONL)") from None
    first = text.lstrip()[:1]
    if first == "{":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise OptionError(f"manifest line {n} is not JSON: {err.msg}") from None
                except RecursionError:
                    raise OptionError(f"manifest line {n} is nested too deeply; a row is one flat JSON object") from None
                if not isinstance(row, dict):
                    raise OptionError(f"manifest line {n} must be a JSON object")
                rows.append((n, row))
    else:
        try:
            rows = [(n, row) for n, row in enumerate(csv.DictReader(io.StringIO(text)), 2)]
        except csv.Error as err:  # e.g. a field over the csv module's 128 kB limit
            raise OptionError(f"the CSV manifest cannot be read: {err}; keep each field under 128 kB") from None
    if not rows:
        raise OptionError("the manifest has no rows")
    jobs = []
    for n, row in rows:
        row = {str(k).strip(): ("" if v is None else str(v) if not isinstance(v, bool) else str(v).lower())
               for k, v in row.items() if k is not None}
        row = {k: v for k, v in row.items() if v.strip() != ""}
        avatar, audio = row.pop("avatar", None), row.pop("audio", None)
        for name, have, what in ((avatar, avatars, "portrait"), (audio, recordings, "recording")):
            if name is not None and name not in have:
                raise OptionError(f"manifest line {n}: no uploaded {what} named {name!r} (uploaded: {', '.join(have) or 'none'})")
        if avatar is None and not avatars:
            raise OptionError(f"manifest line {n}: no avatar given and no portrait uploaded")
        try:
            options = options_from_form(row, has_audio=audio is not None)
        except OptionError as err:
            raise OptionError(f"manifest line {n}: {err}") from None
        for a in [avatar] if avatar else avatars:
            jobs.append(BatchRow(f"{len(jobs) + 1:03d}_{a.rsplit('.', 1)[0]}", a, audio, options))
    if len(jobs) > max_rows:
        raise OptionError(f"the manifest makes {len(jobs)} jobs, more than the {max_rows} a batch may have; split it")
    return jobs
