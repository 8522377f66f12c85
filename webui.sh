#!/usr/bin/env bash
# Set up .venv when needed, then launch the web UI (flags are passed to webui.py).
#   ./webui.sh              install if needed and serve http://127.0.0.1:7860
#   ./webui.sh --exit       install if needed, then stop
set -euo pipefail
cd "$(dirname "$0")"
source tools/setup_env.sh

for arg in "$@" ${COMMANDLINE_ARGS:-}; do
    if [ "${arg}" = "--exit" ]; then
        echo "Installation complete (--exit given, not launching)."
        exit 0
    fi
done
exec python webui.py "$@"
