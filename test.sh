#!/usr/bin/env bash
# Install what the tests need, then run the whole suite. Usage: bash test.sh [pytest args]
# Debian packages (chromium for the browser tests; redis-server, haproxy and nginx for the
# cluster tests; iproute2 for the discovery tests) are installed only when missing.
set -euo pipefail
cd "$(dirname "$0")"
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v ip >/dev/null 2>&1 || need+=(iproute2)  # the discovery tests' network namespaces
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python -m pip install -q --disable-pip-version-check --root-user-action=ignore -r requirements-dev.txt
python -m pytest "$@"
