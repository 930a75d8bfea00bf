#!/bin/sh
# Manual check: the talker page builds (and renders a clip in Chromium) on the Gradio releases the
# WebUIs run: 3.41.2 (AUTOMATIC1111 1.10, with its fastapi 0.94.0 / pydantic 1) and 4.40.0 (Forge).
# CI covers only the current Gradio. Each release gets a plain venv (not --system-site-packages, so
# its own Gradio, FastAPI and pydantic are the ones imported) with talker installed --no-deps; the
# render step appends this Python's site-packages (talker's pipeline deps, Playwright) after them.
#     tools/check_gradio_versions.sh [WORK_DIR]     (default /tmp/talker-gradio-check; needs PyPI)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/talker-gradio-check}
site=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
check() {  # check NAME PIP_REQUIREMENTS...
    name=$1; shift
    [ -x "$work/$name/bin/python" ] || python3 -m venv "$work/$name"
    nice "$work/$name/bin/pip" install -q "$@" "numpy<2" pillow pyyaml
    nice "$work/$name/bin/pip" install -q --no-deps -e "$here"
    (cd "$work" && nice "$work/$name/bin/python" -W ignore "$here/tools/gradio_page_check.py" "$work/$name-out" --render "$site")
}
check gradio341 gradio==3.41.2 fastapi==0.94.0 "pydantic<2" httpx==0.24.1
check gradio440 gradio==4.40.0 huggingface_hub==0.24.6 fastapi==0.112.2 pydantic==2.8.2 "starlette<0.39"
echo "all Gradio releases passed"
