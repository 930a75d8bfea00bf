#!/usr/bin/env bash
# Install talker into fresh virtual environments shaped like its hosts, and render a clip in each:
#   a1111  the Stable Diffusion WebUI 1.10.1's packages as pip constraints (numpy 1.26.2, Pillow 9.5.0,
#          protobuf 3.20.0, gradio 3.41.2, opencv-python 4.11, ...: tests/data/hosts/a1111-1.10.1.txt);
#   numpy2 numpy 2 or later, as ComfyUI runs.
# Each: torch's CPU wheel first, then `pip install -e .` under the constraints (pip fails rather than
# change a constrained package), a check that every constrained package kept its version, then
# `talker make` from text. Prints the versions each environment ended with.
#
#   tools/host_installs.sh [a1111|numpy2 ...]   (default: both; work in $HOST_INSTALLS_DIR, kept, or in a
#                                              temporary folder removed at the end)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "${HOST_INSTALLS_DIR:-}" ]; then
  work="$HOST_INSTALLS_DIR"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"
envs=("$@")
[ ${#envs[@]} -gt 0 ] || envs=(a1111 numpy2)

for name in "${envs[@]}"; do
  case "$name" in
    a1111) constraints="$root/tests/data/hosts/a1111-1.10.1.txt" ;;
    numpy2) constraints="$work/numpy2.txt"; echo "numpy>=2" > "$constraints" ;;
    *) echo "unknown environment $name (a1111 or numpy2)" >&2; exit 2 ;;
  esac
  venv="$work/$name"
  rm -rf "$venv"
  python3 -m venv "$venv"
  py="$venv/bin/python"
  start=$SECONDS
  "$py" -m pip install -q torch==2.13.0
  "$py" -m pip install -q -e "$root" -c "$constraints"
  # Every package pinned with == kept its version; numpy2 ended with numpy 2.
  "$py" - "$constraints" "$name" <<'EOF'
import importlib.metadata as md, sys
from packaging.requirements import Requirement
bad = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    req = Requirement(line)
    try:
        found = md.version(req.name)
    except md.PackageNotFoundError:
        continue  # a host package talker does not need is simply not installed here
    if not req.specifier.contains(found, prereleases=True):
        bad.append(f"{req.name} {found} (host: {req.specifier})")
if bad:
    sys.exit("changed host packages: " + ", ".join(bad))
installed = {d.metadata["Name"].lower(): d.version for d in md.distributions()}
shown = ["numpy", "pillow", "opencv-python", "scipy", "torch", "safetensors", "protobuf", "mediapipe"]
print(sys.argv[2] + ": " + ", ".join(f"{n} {installed[n]}" for n in shown if n in installed))
EOF
  "$py" -m talker.cli make --image "$root/talker/data/astronaut.jpg" --text "Hello from a fresh environment." \
    -o "$work/$name.mp4" --force
  test -s "$work/$name.mp4"
  echo "$name: installed and rendered $work/$name.mp4 in $((SECONDS - start)) s"
done
