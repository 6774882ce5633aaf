#!/usr/bin/env bash
# Starts a local S3-compatible server (moto, which honours conditional writes) for the tests,
# installing it into .venv-s3 on first use, and creates the bucket `kubesnap-test`.
#
#   eval "$(scripts/s3-server.sh start)"   # exports KUBESNAP_TEST_S3 (endpoint) and the pid
#   scripts/s3-server.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
port="${KUBESNAP_S3_PORT:-5055}"
venv=.venv-s3
case "${1:-start}" in
start)
    if [ ! -x "$venv/bin/moto_server" ]; then
        python3 -m venv "$venv" >&2 || {
            # Debian splits venv out of python3.
            (apt-get update -qq && apt-get install -y -qq python3-venv) >&2 && python3 -m venv "$venv" >&2
        }
        "$venv/bin/pip" install -q 'moto[s3]==5.2.5' flask flask-cors >&2
    fi
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >/tmp/kubesnap-moto.log 2>&1 &
    pid=$!
    python3 - "$port" <<'PY' >&2
import sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(200):
    try:
        urllib.request.urlopen(base + "/", timeout=1)
        break
    except Exception:
        time.sleep(0.1)
urllib.request.urlopen(urllib.request.Request(base + "/kubesnap-test", method="PUT"), timeout=5)
PY
    echo "export KUBESNAP_TEST_S3=http://127.0.0.1:$port KUBESNAP_S3_PID=$pid"
    ;;
stop)
    [ -n "${KUBESNAP_S3_PID:-}" ] && kill "$KUBESNAP_S3_PID" 2>/dev/null || true
    ;;
esac
