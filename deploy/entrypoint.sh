#!/bin/sh
# Container entrypoint: the arguments are a talker command line without the leading `talker`
# (`serve ...`, `worker ...`, `models download ...`, `doctor`).
#
# Before a worker starts, the model files on the shared volume are read once, sequentially, into
# the node's page cache: the workers memory-map the weights, and on a network volume page faults
# in random order are far slower than one sequential read. TALKER_WARM_MODELS=none skips this.
set -eu

if [ "${1:-}" = "worker" ] && [ "${TALKER_WARM_MODELS:-all}" != "none" ] && [ -d "${TALKER_MODELS:-/models}" ]; then
    started=$(date +%s)
    find "${TALKER_MODELS:-/models}" -type f ! -name '*.part' ! -name '.*' -exec cat {} + > /dev/null
    echo "talker-entrypoint: model files read into the page cache in $(( $(date +%s) - started )) s" >&2
fi

exec talker "$@"
