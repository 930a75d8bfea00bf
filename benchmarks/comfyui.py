"""The talker nodes in a running ComfyUI, driven through its HTTP API (run by hand, never in CI).

    python benchmarks/comfyui.py --comfyui /path/to/ComfyUI --pid PID [--url http://127.0.0.1:8188]

Start ComfyUI fresh first (its main.py; the talker folder in custom_nodes), then run this. It

1. saves the talker nodes of ``/object_info`` (inputs and outputs with their types);
2. (after the memory runs) runs ``examples/comfyui/talker_api.json`` (Load Portrait, Text to Speech,
   Make, core SaveVideo, Score) and checks SaveVideo's MP4: H.264 + 48 kHz AAC, as long as the speech;
3. measures the ComfyUI process's resident memory (VmRSS of /proc/PID/status) around a 16 s clip at
   512 (core LoadAudio -> Make -> core SaveVideo, no frames asked for): the first in the fresh
   process (its growth includes loading talker), a second one, then the same clip with its frames
   taken by core GetVideoComponents (kept in ComfyUI's cache): the baseline that shows what decoded
   frames cost.

The portrait is the scikit-image astronaut, the speech Festival's (tests/media_factory.py), both
written into ComfyUI's input folder. Writes benchmarks/out/comfyui_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path[0:1] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import media_factory as mf  # noqa: E402
from pipeline import speech_file  # noqa: E402  (benchmarks/pipeline.py: Festival speech of any length)

SECONDS = 16.0


def rss_mb(pid: int) -> dict:
    """{'rss_mb': resident now, 'peak_mb': highest resident so far} of process ``pid``, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "peak_mb": int(fields["VmHWM"].split()[0]) / 1024}


def run_prompt(url: str, prompt: dict, timeout_s: float = 1800) -> dict:
    """POST ``prompt`` (API format) to /prompt and wait for its /history entry; returns it."""
    body = json.dumps({"prompt": prompt, "client_id": str(uuid.uuid4())}).encode()
    request = urllib.request.Request(f"{url}/prompt", body, {"Content-Type": "application/json"})
    try:
        prompt_id = json.load(urllib.request.urlopen(request, timeout=60))["prompt_id"]
    except urllib.error.HTTPError as err:
        raise SystemExit(f"/prompt refused the workflow: {err.read().decode()}") from err
    end = time.time() + timeout_s
    while time.time() < end:
        history = json.load(urllib.request.urlopen(f"{url}/history/{prompt_id}", timeout=60))
        if prompt_id in history and history[prompt_id]["status"].get("completed") is not None:
            entry = history[prompt_id]
            if entry["status"]["status_str"] != "success":
                raise SystemExit(f"the workflow failed: {json.dumps(entry['status'])[:3000]}")
            return entry
        time.sleep(2)
    raise SystemExit(f"the workflow did not finish in {timeout_s:g} s")


def saved_file(comfyui: Path, entry: dict, node: str) -> Path:
    """The file a Save node of a finished workflow wrote."""
    item = entry["outputs"][node]["images"][0]
    return comfyui / item["type"] / item["subfolder"] / item["filename"]


def clip_facts(path: Path) -> dict:
    from talker.media import count_frames, probe_media

    facts = probe_media(path)
    return {"file": path.name, "duration_s": facts["duration_s"], "frames": count_frames(path),
            "video": facts["video"], "audio": facts["audio"]}


def make_prompt(seed: int, frames: bool, wav: str) -> dict:
    """Load Portrait + core LoadAudio -> Make (512, embedded) -> core SaveVideo; with ``frames``, core
    GetVideoComponents takes the frames and one of them is previewed (the batch stays cached)."""
    example = json.loads((ROOT / "examples/comfyui/talker_api.json").read_text())
    make = example["3"]["inputs"]
    make.update({"audio": ["2", 0], "size": 512, "backend": "embedded", "seed": seed})
    del make["transcript"]
    prompt = {"1": example["1"], "2": {"class_type": "LoadAudio", "inputs": {"audio": wav}},
              "3": example["3"], "4": example["4"]}
    if frames:
        prompt["6"] = {"class_type": "GetVideoComponents", "inputs": {"video": ["3", 0]}}
        prompt["7"] = {"class_type": "ImageFromBatch", "inputs": {"image": ["6", 0], "batch_index": 0, "length": 1}}
        prompt["8"] = {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}}
    return prompt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", type=Path, required=True, help="the ComfyUI folder (main.py, input/, output/)")
    parser.add_argument("--pid", type=int, required=True, help="the ComfyUI process, freshly started")
    parser.add_argument("--url", default="http://127.0.0.1:8188")
    args = parser.parse_args()
    out: dict = {"machine": "2-core CPU machine shared with other work", "started": rss_mb(args.pid)}

    info = json.load(urllib.request.urlopen(f"{args.url}/object_info", timeout=60))
    out["object_info"] = {
        key: {"display_name": node["display_name"],
              "inputs": {f"{name}{'' if section == 'required' else ' (optional)'}":
                         spec[0] if isinstance(spec[0], str) else f"COMBO of {len(spec[0])}"
                         for section in ("required", "optional")
                         for name, spec in node["input"].get(section, {}).items()},
              "outputs": dict(zip(node["output_name"], node["output"]))}
        for key, node in sorted(info.items()) if key.startswith("Talker")}

    mf.save_png(mf.astronaut(), args.comfyui / "input" / "portrait.png")
    wav = speech_file(args.comfyui / "input", SECONDS / 60)
    runs = (("first_clip_no_frames", False), ("second_clip_no_frames", False),
            ("clip_frames_by_GetVideoComponents", True))
    for seed, (name, frames) in enumerate(runs, 1):
        before = rss_mb(args.pid)
        t = time.perf_counter()
        entry = run_prompt(args.url, make_prompt(seed, frames, wav.name))
        after = rss_mb(args.pid)
        out[name] = {"seconds": round(time.perf_counter() - t, 1), "before": before, "after": after,
                     "growth_mb": round(after["rss_mb"] - before["rss_mb"], 1),
                     "saved": clip_facts(saved_file(args.comfyui, entry, "4"))}
        print(name, json.dumps(out[name]), flush=True)

    t = time.perf_counter()
    example = json.loads((ROOT / "examples/comfyui/talker_api.json").read_text())
    entry = run_prompt(args.url, example)
    from talker import espeak

    samples, rate, _ = espeak.speak(example["2"]["inputs"]["text"], "en-us", example["2"]["inputs"]["speed"])
    out["example"] = {"seconds": round(time.perf_counter() - t, 1), "speech_s": round(len(samples) / rate, 3),
                      "saved": clip_facts(saved_file(args.comfyui, entry, "4")),
                      "score": entry["outputs"]["5"]["text"][0].splitlines()[0]}
    target = ROOT / "benchmarks/out/comfyui_cpu.json"
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "object_info"}, indent=1))


if __name__ == "__main__":
    main()
