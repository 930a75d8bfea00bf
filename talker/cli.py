"""The ``talker`` command line.

    talker make --image face.png --audio voice.wav [-o out.mp4]

User mistakes end with one line ``error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from talker import __version__
from talker.errors import TalkerError
from talker.help_format import ArgumentParser
from talker.options import BACKENDS, DEVICES, ENHANCERS, PRECISIONS, MakeOptions
from talker.presets import preset_names
from talker.types import PREPROCESS_MODES


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="talker",
        description="Turn a portrait and a voice into a lip-synced spokesperson video.",
        epilog="Run 'talker make --help' for the options of a render.",
    )
    parser.add_argument("--version", action="version", version=f"talker {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what each stage does")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_make(sub)
    _add_coeffs(sub)
    _add_score(sub)
    from talker.doctor import add_doctor_command
    from talker.models.commands import add_models_commands
    from talker.webui.command import add_webui_command
    from talker.service.commands import add_service_commands

    add_models_commands(sub)
    add_doctor_command(sub)
    add_webui_command(sub)
    add_service_commands(sub)
    from talker.portrait.command import add_portrait_command

    add_portrait_command(sub)
    return parser


def _add_make(sub) -> None:
    p = sub.add_parser(
        "make",
        help="make a talking video from a portrait and speech",
        description="Make an MP4 in which the face of --image speaks --audio (or --text).",
    )
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log what each stage does")

    g = p.add_argument_group("inputs")
    g.add_argument("--image", type=Path, help="portrait: jpg, png, webp or bmp (with --portrait-prompt: the picture to restyle, optional)")
    g.add_argument("--audio", type=Path, help="speech: any format ffmpeg reads (wav, mp3, m4a, ogg, flac, ...)")
    g.add_argument("--text", help="words to speak with espeak-ng when no --audio is given; with --audio, its transcript")

    g = p.add_argument_group("output")
    g.add_argument("-o", "--out", type=Path,
                   help="MP4 to write (default: results/<image>_<audio>.mp4); '-' writes a fragmented MP4 to standard output")
    g.add_argument("--stream", type=Path, metavar="PATH",
                   help="also write the video while it renders: an HLS playlist (.m3u8, with .ts segments beside it) "
                   "or a fragmented MP4 (.mp4) that players can open before the render ends")
    g.add_argument("--force", action="store_true", help="overwrite an existing output file")

    g = p.add_argument_group("face")
    g.add_argument("--preprocess", choices=PREPROCESS_MODES, default="crop",
                   help="crop: the face; extcrop: a larger crop; resize: the whole picture; full/extfull: animate the face inside the whole picture")
    g.add_argument("--size", type=int, choices=(256, 512), help="face resolution in pixels (default: 256, or the preset's)")
    g.add_argument("--face-index", type=int, help="which face to animate when there are several (0 = largest)")

    g = p.add_argument_group("speech and motion")
    g.add_argument("--language", default="auto",
                   help="'auto' or 'en' use English phones; any other value drives the mouth from loudness and formants")
    g.add_argument("--blink-rate", type=float, default=17.0, help="blinks per minute")
    g.add_argument("--no-blink", action="store_true", help="never blink")
    g.add_argument("--pose-style", type=int, default=0, help="head-motion manner, 0-45: 0 calm presenter, 1 animated talker, 2 listener who tilts, "
                   "3 nodder; 4-45 repeat them (style %% 4) with variations (embedded backend)")
    g.add_argument("--head-motion", type=float, default=1.0, help="scale of head motion: 0 = still, 2 = twice the spread")
    g.add_argument("--still", action="store_true", help="keep the head still")
    g.add_argument("--expression-scale", type=float, default=1.0, help="scale of mouth and brow motion")
    g.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same video")

    g = p.add_argument_group("backend and compute")
    g.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="embedded needs no model files; sadtalker needs the official checkpoints; auto picks sadtalker when they verify")
    g.add_argument("--checkpoints", type=Path, help="folder with the SadTalker checkpoints")
    g.add_argument("--preset", metavar="NAME",
                   help=f"speed and memory preset: {', '.join(preset_names('make'))}, a .yaml file, or auto (picked "
                   "from the free GPU memory); flags given here win over it; on GPU out-of-memory the render goes on "
                   "with the preset's fallback")
    g.add_argument("--device", choices=DEVICES, help="default: auto, or the preset's")
    g.add_argument("--precision", choices=PRECISIONS,
                   help="default: auto (fp16 on a GPU, fp32 on the CPU), or the preset's")
    g.add_argument("--batch-size", type=int, help="frames rendered at once (default: 8, or the preset's)")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction,
                   help="torch.compile the networks (default: on for fp16/bf16 on a GPU, or the preset's)")

    g = p.add_argument_group("enhancement")
    g.add_argument("--enhancer", choices=ENHANCERS, help="face restoration of every frame (default: none, or the preset's)")
    g.add_argument("--enhance-strength", type=float, default=1.0, help="0 = rendered face, 1 = fully restored")
    g = p.add_argument_group("report")
    g.add_argument("--report", action="store_true",
                   help="grade the video (see 'talker score') and write <out>.report.json and <out>.report.png beside it")
    from talker.portrait.command import add_portrait_arguments

    add_portrait_arguments(p, prefix="portrait-")  # --portrait-prompt: draw the portrait first (saved as <out>.portrait.png)
    p.set_defaults(run=_run_make)


def _add_coeffs(sub) -> None:
    p = sub.add_parser(
        "coeffs",
        help="write the per-frame motion coefficients of a render, without rendering",
        description="Run the face and speech stages and save the CoeffTrack (.npz: values (T, C), space, "
        "channels, source, meta) for inspection.",
    )
    p.add_argument("--image", type=Path, required=True, help="portrait")
    p.add_argument("--audio", type=Path, help="speech")
    p.add_argument("--text", help="words to speak with espeak-ng, or the transcript of --audio")
    p.add_argument("-o", "--out", type=Path, required=True, help=".npz file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    same = "as in 'talker make'"
    p.add_argument("--preprocess", choices=PREPROCESS_MODES, default="crop", help=same)
    p.add_argument("--size", type=int, choices=(256, 512), default=256, help="face resolution in pixels")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help=same)
    p.add_argument("--checkpoints", type=Path, help="folder with the SadTalker checkpoints")
    p.add_argument("--device", choices=DEVICES, default="auto", help=same)
    p.add_argument("--pose-style", type=int, default=0, help="head-motion style, 0-45")
    p.add_argument("--still", action="store_true", help="keep the head still")
    p.add_argument("--no-blink", action="store_true", help="never blink")
    p.add_argument("--expression-scale", type=float, default=1.0, help="scale of mouth and brow motion")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same motion")
    p.set_defaults(run=_run_coeffs)


def _run_coeffs(args) -> int:
    from talker.folders import made_folders
    from talker.media import check_output_path
    from talker.pipeline import choose_backend, load_audio, load_face

    out = check_output_path(args.out, args.force, suffix=".npz")
    options = MakeOptions(
        image=args.image, audio=args.audio, text=args.text, preprocess=args.preprocess, size=args.size,
        backend=args.backend, checkpoints=args.checkpoints, device=args.device, pose_style=args.pose_style,
        still=args.still, no_blink=args.no_blink, expression_scale=args.expression_scale, seed=args.seed,
    ).validate()
    with made_folders(out):
        backend = choose_backend(options)
        track = backend.coeffs(load_face(options), load_audio(options), options)
        track.save(out)
    print(f"{out}: {track.num_frames} frames x {track.values.shape[1]} {track.space} coefficients")
    return 0


def _add_score(sub) -> None:
    p = sub.add_parser(
        "score",
        help="grade a talking video: lip sync, blinks, jitter, identity, background",
        description="Measure a video with the landmark model and grade each measure pass / warn / fail.",
    )
    p.add_argument("--video", type=Path, required=True, help="the MP4 to grade")
    p.add_argument("--audio", type=Path, help="the speech it should follow (default: the video's own audio track)")
    p.add_argument("--image", type=Path, help="the source portrait (enables identity, sharpness and background checks)")
    p.add_argument("--transcript", type=Path, help="text file with the words spoken (enables the p/b/m and vowel checks)")
    p.add_argument("-o", "--out", type=Path, help="JSON report to write (default: <video>.report.json); a PNG summary goes beside it")
    p.add_argument("--fail-on", choices=("warn", "fail", "never"), default="fail",
                   help="exit with status 1 when any check is at least this bad")
    p.set_defaults(run=_run_score)


def _run_make(args) -> int:
    from talker.make_presets import SETTING_NAMES
    from talker.pipeline import make
    from talker.progress import TerminalProgress

    given = {name: getattr(args, name) for name in SETTING_NAMES if getattr(args, name) is not None}
    if args.report and args.out is not None and str(args.out) == "-":
        from talker.errors import OptionError

        raise OptionError("--report needs a saved video; give -o FILE.mp4 (and --stream for live output)")
    options = MakeOptions(
        image=args.image, audio=args.audio, text=args.text, out=args.out, force=args.force,
        preprocess=args.preprocess, face_index=args.face_index, preset=args.preset, **given,
        language=args.language, blink_rate=args.blink_rate, no_blink=args.no_blink,
        pose_style=args.pose_style, head_motion=args.head_motion, still=args.still,
        expression_scale=args.expression_scale, seed=args.seed,
        backend=args.backend, checkpoints=args.checkpoints, enhance_strength=args.enhance_strength,
    )
    if args.sd_prompt or args.sd_prompt_file:
        from talker.portrait.command import portrait_options

        options.portrait = portrait_options(args, init_image=args.image)
    with TerminalProgress() as progress:
        result = make(options, progress=progress, stream=args.stream, keep=tuple(given))
    if result.video is not None:
        print(result.video)
    if args.report:
        from talker.media import read_image
        from talker.score import score_and_write

        report = score_and_write(result.video, result.audio, result.video.with_suffix(".report.json"),
                                 image=read_image(result.portrait or args.image), transcript=args.text)
        print(f"report: {report.verdict}", file=sys.stderr)
    return 0


def _run_score(args) -> int:
    from talker.media import read_audio, read_image
    from talker.score import report_lines, score_and_write

    audio = read_audio(args.audio or args.video)
    image = read_image(args.image) if args.image else None
    transcript = None
    if args.transcript:
        try:
            transcript = args.transcript.read_text().strip()
        except OSError as err:
            from talker.errors import OptionError

            raise OptionError(f"cannot read the transcript {args.transcript}: {err.strerror}") from None
    out = args.out or args.video.with_suffix(".report.json")
    report = score_and_write(args.video, audio, out, image=image, transcript=transcript)
    print("\n".join(report_lines(report)))
    print(f"{report.verdict.upper()}: {out}")
    if args.fail_on == "never":
        return 0
    worst = ("pass", "warn", "fail").index(report.verdict)
    return 1 if worst >= ("pass", "warn", "fail").index(args.fail_on) else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    previous = _stop_on_sigterm()
    try:
        return args.run(args)
    except TalkerError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt as err:
        stopped = isinstance(err, Terminated)
        print(f"{'stopped' if stopped else 'interrupted'}: nothing was written", file=sys.stderr)
        return 128 + (signal.SIGTERM if stopped else signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a container or job runner stopping us), raised like Ctrl-C so that the
    render's with-blocks stop ffmpeg and delete the half-written files."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def _stop_on_sigterm():
    """Turn SIGTERM into ``Terminated`` while a command runs; returns the handler it replaced (None
    off the main thread, where Python cannot set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


if __name__ == "__main__":
    sys.exit(main())
