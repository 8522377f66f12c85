#!/usr/bin/env bash
# Install if needed, then run the whole test suite (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")"
# [cluster]: Ray Serve, for tests/cluster (a 2-replica local cluster, about a minute and a half).
SETUP_EXTRAS="[test,cluster]" source tools/setup_env.sh
# The browser tests drive Debian's chromium; install it where we may (CI runs as root), else they skip and say why.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
        || echo "note: could not install chromium; browser tests will be skipped" >&2
fi
exec python -m pytest "$@"
