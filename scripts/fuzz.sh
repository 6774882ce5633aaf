#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 20). For long runs: scripts/fuzz.sh 3600, or one
# target: RUSTC_BOOTSTRAP=1 cargo fuzz run tree_node -- -max_total_time=36000
# Crashes land in fuzz/artifacts/<target>/; keep each as a regression input in
# fuzz/regressions/<target>/ (tests/integration/fuzz_regressions.rs replays them).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install --quiet --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
cargo fuzz build 2>&1 | grep -E "^error" || true
for t in $targets; do
    mkdir -p "fuzz/corpus/$t"
    echo "fuzz: $t for ${seconds}s"
    cargo fuzz run "$t" -- -max_total_time="$seconds" -print_final_stats=0 2>&1 | grep -E "Done|ERROR|panicked|SUMMARY|crash" || true
    if [ -n "$(ls -A "fuzz/artifacts/$t" 2>/dev/null)" ]; then
        echo "fuzz: $t found a crash: fuzz/artifacts/$t" >&2
        exit 1
    fi
done
