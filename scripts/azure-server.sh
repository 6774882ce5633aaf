#!/usr/bin/env bash
# Starts Azurite (Microsoft's Azure Blob emulator) for the tests, installing it into
# .azurite/node_modules on first use, and creates the container `kubesnap-test`.
#
#   eval "$(scripts/azure-server.sh start)"   # exports KUBESNAP_TEST_AZURE (endpoint) and the pid
#   scripts/azure-server.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
port="${KUBESNAP_AZURE_PORT:-10000}"
dir=.azurite
case "${1:-start}" in
start)
    command -v npm >/dev/null || { echo "azure-server: npm is not installed" >&2; exit 1; }
    if [ ! -x "$dir/node_modules/.bin/azurite-blob" ]; then
        mkdir -p "$dir"
        (cd "$dir" && npm install azurite --silent --no-audit --no-fund >&2)
    fi
    "$dir/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence \
        --skipApiVersionCheck --loose --disableTelemetry >/tmp/kubesnap-azurite.log 2>&1 &
    pid=$!
    python3 - "$port" <<'PY' >&2
import sys, time, urllib.request, urllib.error
for _ in range(200):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=1)
        break
    except urllib.error.HTTPError:
        break  # it answers (with an error for this path): it is up
    except Exception:
        time.sleep(0.1)
PY
    python3 ../shared/tools/azurite-container kubesnap-test "http://127.0.0.1:$port" >&2 || \
        python3 scripts/azurite-container.py kubesnap-test "http://127.0.0.1:$port" >&2
    echo "export KUBESNAP_TEST_AZURE=http://127.0.0.1:$port KUBESNAP_AZURE_PID=$pid"
    ;;
stop)
    [ -n "${KUBESNAP_AZURE_PID:-}" ] && kill "$KUBESNAP_AZURE_PID" 2>/dev/null || true
    ;;
esac
