#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, the unit and integration tests (the shared
# corpus included when it is beside the project), and a short run of each fuzz target.
#
#   scripts/test.sh            everything
#   KUBESNAP_CORPUS=DIR ...    where the shared corpus is (default: ../shared/corpus/manifests)
#   SKIP_FUZZ=1 ...            without the fuzz runs
#   SKIP_S3=1 ...              without the S3-compatible server (S3 tests skip)
#   SKIP_AZURE=1 ...           without the Azure Blob emulator (Azure tests skip)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# What the tests need besides Rust: python3 with PyYAML (the YAML oracle and gen-history), and
# kubectl (the test API server's fidelity tests run the real client against it).
command -v kubectl >/dev/null || { echo "test: kubectl is needed (the test API server is checked against it)" >&2; exit 1; }
if ! python3 -c 'import yaml' 2>/dev/null; then
    say "installing PyYAML"
    python3 -m pip install --quiet pyyaml || { apt-get update -qq && apt-get install -y -qq python3-yaml; }
fi

default_corpus="$(cd .. && pwd)/shared/corpus/manifests"
export KUBESNAP_CORPUS="${KUBESNAP_CORPUS:-$default_corpus}"
if [ ! -d "$KUBESNAP_CORPUS" ]; then
    if [ "${CI:-}" = "true" ]; then
        echo "test: the shared corpus is missing at $KUBESNAP_CORPUS" >&2
        exit 1
    fi
    echo "test: no shared corpus at $KUBESNAP_CORPUS: corpus tests will be skipped" >&2
    unset KUBESNAP_CORPUS
fi

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --no-default-features --lib -- -D warnings

# A real S3-compatible server for the backend conformance suite and the S3 torture test.
if [ -z "${KUBESNAP_TEST_S3:-}" ] && [ -z "${SKIP_S3:-}" ]; then
    say "starting the S3-compatible test server (moto)"
    if eval "$(scripts/s3-server.sh start)"; then
        trap 'scripts/s3-server.sh stop' EXIT
    elif [ "${CI:-}" = "true" ]; then
        echo "test: could not start the S3 test server" >&2
        exit 1
    else
        echo "test: no S3 test server: S3 tests will be skipped" >&2
    fi
fi

# The Azure Blob emulator, where npm can install it (the suite skips Azure otherwise).
if [ -z "${KUBESNAP_TEST_AZURE:-}" ] && [ -z "${SKIP_AZURE:-}" ]; then
    say "starting the Azure Blob emulator (Azurite)"
    if command -v npm >/dev/null && eval "$(scripts/azure-server.sh start)"; then
        trap 'scripts/s3-server.sh stop; scripts/azure-server.sh stop' EXIT
    else
        echo "test: no Azure emulator: Azure tests will be skipped" >&2
    fi
fi

say "cargo test"
cargo test --workspace --all-targets

if [ -z "${SKIP_FUZZ:-}" ] && [ -d fuzz ]; then
    say "fuzz targets (${FUZZ_SECONDS:-20} s each)"
    scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
fi
say "all tests passed"
