#!/usr/bin/env bash
# Install if needed, then run the whole test suite (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")"
SETUP_EXTRAS="[test]" source tools/setup_env.sh
exec python -m pytest "$@"
