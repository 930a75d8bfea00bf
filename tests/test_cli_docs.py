"""The command line's help and docs/troubleshooting.md against what the code really prints.

Every message in the troubleshooting table is triggered through ``talker.cli.main`` (or, for the
host-pin line, ``talker.requirements``) and must appear in the error line, its ``...`` parts
standing for the file, folder or number. A row without a trigger here fails, so a new row needs one.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import media_factory as mf
from conftest import ROOT, run_talker
from talker.cli import build_parser, main
from talker.presets import SHIPPED

TABLE = ROOT / "docs" / "troubleshooting.md"
EXAMPLES = ROOT / "examples"


# ------------------------------------------------------------------------------------ quick start


def readme_block(heading: str) -> str:
    """The first ```bash block under the README's '## heading'."""
    part = (ROOT / "README.md").read_text(encoding="utf-8").split(f"\n## {heading}\n", 1)[1]
    return re.search(r"```bash\n(.*?)```", part, re.S).group(1)


def test_readme_quick_start_runs_twice(tmp_path):
    """The quick start's commands as written, in a folder holding only examples/: twice, as a newcomer
    may paste them again; each run prints the MP4 it (re)wrote."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    commands = [shlex.split(line, comments=True) for line in readme_block("Quick start").splitlines() if line.strip()]
    assert commands and all(c[0] == "talker" for c in commands)
    for _ in range(2):
        for command in commands:
            proc = run_talker(*command[1:], cwd=tmp_path)
            assert proc.returncode == 0, (command, proc.stderr)
            assert Path(proc.stdout.strip()).is_file() and Path(proc.stdout.strip()).parent == tmp_path / "results"
    written = {(tmp_path / c[c.index("-o") + 1]).resolve() for c in commands}
    assert set((tmp_path / "results").iterdir()) == written and len(written) == len(commands)


# ------------------------------------------------------------------------------------------ help


def option_blocks(help_text: str) -> dict[str, str]:
    """'--long-name' -> its whole entry in the help (the option line and its indented description)."""
    blocks, name = {}, None
    for line in help_text.splitlines():
        if re.match(r"^  -", line):
            name = max(re.findall(r"--?[\w-]+", line.split("  ")[1] if line.startswith("  ") else line), key=len)
            blocks[name] = line
        elif name and line.startswith("    "):
            blocks[name] += "\n" + line
        else:
            name = None
    return blocks


def test_make_help_says_each_default_once_with_option_named_metavars():
    proc = run_talker("make", "--help", env={"COLUMNS": "300"})  # no wrapping inside words like low-vram
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    blocks = option_blocks(text)
    assert {"--image", "--audio", "--text", "--out", "--size", "--preset", "--portrait-prompt", "--sd-model"} <= set(blocks)
    for name, block in blocks.items():
        said = " ".join(block.split())
        assert said.count("default") <= 1, (name, said)
        assert "(default: None)" not in said and "(default: False)" not in said, (name, said)
    assert "SD_" not in text, "internal metavars in the help"
    assert "--portrait-prompt PORTRAIT_PROMPT" in text and "--image PATH" in text and "--sd-model PATH" in text
    for name, default in {"--blink-rate": "17.0", "--pose-style": "0", "--preprocess": "crop", "--portrait-steps": "25"}.items():
        assert f"(default: {default})" in " ".join(blocks[name].split()), name
    assert "(default: 256, or the preset's)" in " ".join(blocks["--size"].split())
    for preset in sorted(p.stem for p in (SHIPPED / "make").glob("*.yaml")):
        assert preset in " ".join(blocks["--preset"].split()), preset


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(words, parser) of every command and sub-command under ``parser`` (('models', 'download'), ...)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from commands(sub, (*path, name))


def test_every_command_help_says_each_default_once_with_option_named_metavars(monkeypatch):
    """Every command's --help (webui, serve, worker, models ... as well as make): a default is said
    once where there is one worth saying, never '(default: None)'; no internal names as metavars."""
    monkeypatch.setenv("COLUMNS", "300")
    found = dict(commands(build_parser()))
    assert {("make",), ("webui",), ("serve",), ("worker",), ("doctor",), ("models", "download"), ("coeffs",)} <= set(found)
    for words, parser in found.items():
        text = parser.format_help()
        blocks = option_blocks(text)
        for action in parser._actions:
            if not action.option_strings or action.help in (None, argparse.SUPPRESS):
                continue
            long_name = max(action.option_strings, key=len)
            said = " ".join(blocks[long_name].split())
            assert said.count("default") <= 1, (words, long_name, said)
            assert not re.search(r"\(default: (None|False|\[\]|)\)", said), (words, long_name, said)
            worth = action.default not in (None, False, argparse.SUPPRESS, "", [])
            assert not worth or "default" in said, (words, long_name, said)
            if action.dest != long_name.lstrip("-").replace("-", "_"):
                assert not re.search(rf"\b{action.dest.upper()}\b", text), (words, long_name, "internal metavar")


def test_portrait_help_lists_every_preset():
    proc = run_talker("portrait", "--help", env={"COLUMNS": "300"})
    assert proc.returncode == 0, proc.stderr
    said = " ".join(option_blocks(proc.stdout)["--preset"].split())
    shipped = sorted(p.stem for p in (SHIPPED / "portrait").glob("*.yaml"))
    assert "throughput" in shipped
    for preset in shipped:
        assert preset in said, (preset, said)


# ------------------------------------------------------------------------------ troubleshooting


def table_messages() -> list[str]:
    """The backticked messages of the first column of the troubleshooting table's first table."""
    text = TABLE.read_text(encoding="utf-8")
    first_table = text.split("\n\n| ", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in first_table.splitlines() if line.startswith("| `")]
    return [re.match(r"\| `(.+?)` \|", row).group(1) for row in rows]


def says(line: str, message: str) -> bool:
    """Whether ``line`` holds the parts of ``message`` (split at '...') in order."""
    at = 0
    for part in message.split("..."):
        found = line.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("trouble")
    speech, rate = sf.read(EXAMPLES / "hello.wav", dtype="float32")
    files = {"face": EXAMPLES / "astronaut.jpg", "speech": EXAMPLES / "hello.wav"}
    files["no_face"] = mf.save_png(np.full((300, 300, 3), (90, 140, 200), np.uint8), d / "sky.png")
    canvas = np.full((480, 480, 3), 235, np.uint8)
    small = mf.astronaut()[::3, ::3]  # a face about 40 px wide
    canvas[150:150 + small.shape[0], 150:150 + small.shape[1]] = small
    files["tiny_face"] = mf.save_png(canvas, d / "tiny.png")
    files["two_faces"] = mf.save_png(np.concatenate([mf.astronaut(), mf.astronaut()[:, ::-1]], axis=1), d / "two.png")
    t = np.arange(int(4 * 22050)) / 22050
    f0 = 220 * 2 ** (np.array([0, 4, 7, 12, 7, 4]) / 12)[(t * 2).astype(int) % 6]
    sf.write(d / "music.wav", (0.2 * np.sin(2 * np.pi * np.cumsum(f0) / 22050)).astype(np.float32), 22050)
    files["music"] = d / "music.wav"
    sf.write(d / "short.wav", speech[int(0.5 * rate): int(0.54 * rate)], rate)
    files["short"] = d / "short.wav"
    (d / "exists.mp4").write_bytes(b"earlier video")
    files["exists"] = d / "exists.mp4"
    return files


def make_error(capsys, *args) -> str:
    """The 'error:' line of `talker make ARGS` (which must fail with status 2)."""
    status = main(["make", *map(str, args)])
    err = capsys.readouterr().err
    assert status == 2, err
    return next(line for line in err.splitlines() if line.startswith("error: "))


def unmet_pin_line(tmp_path) -> str:
    """The line install.py, the WebUI tab and doctor print for a requirement a host's pins broke."""
    from talker.requirements import unmet_requirements

    info = tmp_path / "hosted-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hosted\nVersion: 1.0\nRequires-Dist: numpy>=999\n")
    (unmet,) = unmet_requirements("hosted", path=[str(tmp_path)])
    return unmet.line


def triggers(media, out: Path, models: Path, monkeypatch, capsys):
    """table message -> the arguments of `talker make` that make it (or a callable giving the line)."""
    face, speech = media["face"], media["speech"]

    def without_espeak() -> str:
        # neither the library nor the program, as test_media simulates it: the library loads from the
        # system's folders whatever PATH says
        from talker import espeak

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(espeak, "available", lambda: False)
            patch.setenv("PATH", str(models))
            return make_error(capsys, "--image", face, "--text", "Hello there", "-o", out)

    def fp16_on_cpu() -> str:
        # the precision is checked once the enhancer's file is found, before it is read
        with_file = models.parent / "with-gfpgan"
        with_file.mkdir()
        (with_file / "GFPGANv1.4.pth").write_bytes(b"checked only after the precision")
        monkeypatch.setenv("TALKER_MODELS", str(with_file))
        return make_error(capsys, "--image", face, "--audio", speech, "--enhancer", "gfpgan", "--device", "cpu",
                          "--precision", "fp16", "-o", out)

    return {
        "no face found in ...": ("--image", media["no_face"], "--audio", speech, "-o", out),
        "the face in ... is only ... px": ("--image", media["tiny_face"], "--audio", speech, "-o", out),
        "found 2 faces: #0 at ...": ("--image", media["two_faces"], "--audio", speech, "-o", out),
        "no speech found in ...: it sounds like music, noise or silence":
            ("--image", face, "--audio", media["music"], "-o", out),
        "audio ... is ... s long; give at least 0.2 s of speech": ("--image", face, "--audio", media["short"], "-o", out),
        "no speech given: pass --audio PATH, or --text": ("--image", face, "-o", out),
        "--text needs the espeak-ng speech synthesiser, which is not installed": without_espeak,
        "output ... exists; pass --force to overwrite or choose another --out":
            ("--image", face, "--audio", speech, "-o", media["exists"]),
        "cannot write into folder ...": ("--image", face, "--audio", speech, "-o", "/proc/talker/x.mp4"),
        "SadTalker checkpoints missing from ...": ("--image", face, "--audio", speech, "--backend", "sadtalker", "-o", out),
        "--checkpoints ...: that folder does not exist":
            ("--image", face, "--audio", speech, "--backend", "sadtalker", "--checkpoints", models / "nowhere", "-o", out),
        "face restoration needs GFPGANv1.4.pth": ("--image", face, "--audio", speech, "--enhancer", "gfpgan", "-o", out),
        "--precision fp16 needs a CUDA GPU": fp16_on_cpu,
        "talker: needs ..., found ...; fix: ...": lambda: unmet_pin_line(models.parent / "dist"),
    }



def test_troubleshooting_messages_are_the_real_ones(media, tmp_path, monkeypatch, capsys):
    models = tmp_path / "models"
    models.mkdir()
    for var in ("SADTALKER_CHECKPOINTS", "TALKER_REUSE_DIRS", "TALKER_MANIFEST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TALKER_MODELS", str(models))
    monkeypatch.setenv("HOME", str(tmp_path))  # no SadTalker / WebUI folders to reuse
    out = tmp_path / "out" / "x.mp4"
    cases = triggers(media, out, models, monkeypatch, capsys)
    messages = table_messages()
    assert len(messages) >= 10
    assert set(messages) == set(cases), "every row needs a trigger here, every trigger a row"
    for message in messages:
        case = cases[message]
        line = case() if callable(case) else make_error(capsys, *case)
        assert says(line, message), (message, line)
    assert not (tmp_path / "out").exists()  # no failure left a folder behind
    assert media["exists"].read_bytes() == b"earlier video"
