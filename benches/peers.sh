#!/usr/bin/env bash
# Peer benchmark: kubesnap against restic, borg and (where installed) rustic on the same history.
#
#   benches/peers.sh [HISTORY_DIR]
#
# HISTORY_DIR is a gen-history output (day-00 ... day-NN and truth.json); without it one is
# generated from the shared corpus with --tenants 4 --days 10 --seed 1 (the issue's setting).
# Every day is staged as fresh files at one path (as a dumper writes them) and backed up by each
# tool in turn; then each tool restores one object from the middle day with a cold cache, and
# backs up an unchanged day (the last day staged again), then keeps the last 3 snapshots and
# removes the rest with its prune (restic/rustic `forget --prune`, borg `prune` + `compact`).
# Prints per tool: repository bytes, total and last-day snapshot seconds, unchanged-day
# seconds, cold one-object restore seconds, forget+prune seconds and peak memory, bytes after,
# and the ratios of kubesnap to the best peer. Installs restic and borg (Debian) if missing.
#
# Environment: KUBESNAP (binary; default: builds target/release/kubesnap), WORK (scratch folder;
# default a temp dir), KUBESNAP_CORPUS (default ../shared/corpus/manifests).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
corpus="${KUBESNAP_CORPUS:-$(cd "$here/.." && pwd)/shared/corpus/manifests}"
work="${WORK:-$(mktemp -d /tmp/kubesnap-peers.XXXXXX)}"
mkdir -p "$work"
hist="${1:-}"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need restic || ! need borg; then
    echo "peers: installing restic and borgbackup" >&2
    (apt-get update -qq && apt-get install -y -qq restic borgbackup) >/dev/null
fi
if [ -z "${KUBESNAP:-}" ]; then
    (cd "$here" && cargo build --release --quiet --bin kubesnap)
    KUBESNAP="$here/target/release/kubesnap"
fi
if [ -z "$hist" ]; then
    hist="$work/history"
    [ -d "$hist/day-00" ] || python3 "$corpus/../../tools/gen-history" --corpus "$corpus" --out "$hist" --tenants 4 --days 10 --seed 1 2>/dev/null
fi
days=$(cd "$hist" && ls -d day-* | sort)
ndays=$(echo "$days" | wc -l)
mid_day=$(echo "$days" | sed -n "$(( (ndays + 1) / 2 ))p")
last_day=$(echo "$days" | tail -1)

# The object restored: a Deployment present in the middle day (the first one, by path).
obj_rel=$(cd "$hist/$mid_day" && find namespaces -path '*Deployment.apps/*' -name '*.yaml' | sort | sed -n 1p)
obj_ns=$(echo "$obj_rel" | cut -d/ -f2)
obj_name=$(basename "$obj_rel" .yaml)
stage="$work/stage/cluster"

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
stage_day() { rm -rf "$work/stage"; mkdir -p "$work/stage"; cp -r "$hist/$1" "$stage"; }

export RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench KUBESNAP_PASSWORD=bench
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes

declare -A total last unchanged restore size forget forget_rss size_after

run_tool() { # tool init backup(day) restore(snapshot-index)
    local tool=$1
    local t=0 t_last=0 i=0
    for d in $days; do
        stage_day "$d"
        local s; s=$(now)
        backup_$tool "$d"
        local e; e=$(now)
        t_last=$(secs "$s" "$e"); t=$(echo "$t + $t_last" | bc)
        i=$((i + 1))
    done
    total[$tool]=$t; last[$tool]=$t_last
    size[$tool]=$(du -sb "$work/$tool-repo" | cut -f1)
    stage_day "$last_day"
    local s; s=$(now); backup_$tool "$last_day"; local e; e=$(now)
    unchanged[$tool]=$(secs "$s" "$e")
    s=$(now); restore_$tool > "$work/$tool-restored.yaml"; e=$(now)
    restore[$tool]=$(secs "$s" "$e")
    grep -q "$obj_name" "$work/$tool-restored.yaml" || { echo "peers: $tool restored nothing" >&2; exit 1; }
    # Retention then removal of what is no longer referenced: keep the last 3 snapshots.
    s=$(now); /usr/bin/time -f '%M' -o "$work/$tool-forget-rss" bash -c "$(declare -f forget_$tool); forget_$tool" >/dev/null 2>&1; e=$(now)
    forget[$tool]=$(secs "$s" "$e")
    forget_rss[$tool]=$(tail -1 "$work/$tool-forget-rss")
    size_after[$tool]=$(du -sb "$work/$tool-repo" | cut -f1)
}

# --- kubesnap
export KUBESNAP work
kdir="$work/kubesnap-repo"; export kdir; rm -rf "$kdir" "$work/kcache"
"$KUBESNAP" --repo "$kdir" init -q >/dev/null
backup_kubesnap() { "$KUBESNAP" --repo "$kdir" --cache-dir "$work/kcache" snapshot --from-dir "$stage" --cluster bench -q --time "$(python3 -c "import json,sys;print([d['time'] for d in json.load(open('$hist/truth.json')) if d['dir']=='$1'][0])")" >/dev/null; }
forget_kubesnap() { "$KUBESNAP" --repo "$kdir" --cache-dir "$work/kcache" forget --keep-last 3 --prune -q; }
restore_kubesnap() {
    local t; t=$(python3 -c "import json;print([d['time'] for d in json.load(open('$hist/truth.json')) if d['dir']=='$mid_day'][0])")
    rm -rf "$work/kcache-cold"
    "$KUBESNAP" --repo "$kdir" --cache-dir "$work/kcache-cold" restore --at "$t" "deployment/$obj_name" -n "$obj_ns" --stdout -q --io-stats 2> "$work/kubesnap-io.txt"
}
# --- restic
rdir="$work/restic-repo"; export rdir; rm -rf "$rdir"
restic -q -r "$rdir" init >/dev/null
forget_restic() { restic -q -r "$rdir" forget --keep-last 3 --prune; }
backup_restic() { restic -q -r "$rdir" backup "$stage" --tag "$1" >/dev/null; }
restore_restic() {
    local id; id=$(restic -r "$rdir" snapshots --json --tag "$mid_day" --no-cache | python3 -c "import json,sys;print(json.load(sys.stdin)[0]['id'])")
    restic -q -r "$rdir" --no-cache dump "$id" "$stage/$obj_rel"
}
# --- borg
bdir="$work/borg-repo"; export bdir; rm -rf "$bdir" "$work/bcache"
BORG_CACHE_DIR="$work/bcache" borg init --encryption repokey-blake2 "$bdir"
forget_borg() { BORG_CACHE_DIR="$work/bcache" borg prune --keep-last 3 "$bdir" && BORG_CACHE_DIR="$work/bcache" borg compact "$bdir"; }
backup_borg() { (cd "$work/stage" && BORG_CACHE_DIR="$work/bcache" borg create --compression zstd,3 "$bdir::$1-$(date +%s%N)" cluster); }
restore_borg() {
    local a; a=$(BORG_CACHE_DIR="$work/bcache" borg list --short "$bdir" | grep "^$mid_day-" | sed -n 1p)
    BORG_CACHE_DIR="$work/bcache-cold-$RANDOM" borg extract --stdout "$bdir::$a" "cluster/$obj_rel"
}
# --- rustic (only where installed)
tools="kubesnap restic borg"
if need rustic; then
    udir="$work/rustic-repo"; export udir; rm -rf "$udir"
    rustic -r "$udir" --password bench init >/dev/null 2>&1
    forget_rustic() { rustic -r "$udir" --password bench forget --keep-last 3 --prune >/dev/null 2>&1; }
    backup_rustic() { rustic -r "$udir" --password bench backup "$stage" --tag "$1" >/dev/null 2>&1; }
    restore_rustic() {
        local id; id=$(rustic -r "$udir" --password bench --no-cache snapshots --json --filter-tags "$mid_day" 2>/dev/null | python3 -c "import json,sys;d=json.load(sys.stdin);print(d[0][1][0]['id'] if isinstance(d[0],list) else d[0]['id'])")
        rustic -r "$udir" --password bench --no-cache dump "$id:$stage/$obj_rel" 2>/dev/null
    }
    tools="$tools rustic"
fi

for t in $tools; do
    echo "peers: $t ..." >&2
    run_tool "$t"
done

# KDF time alone: opening a repository with Argon2id's default parameters, minus with cheap ones.
kdf_dir="$work/kdf"; rm -rf "$kdf_dir"; mkdir -p "$kdf_dir"
"$KUBESNAP" --repo "$kdf_dir/default" init -q >/dev/null
"$KUBESNAP" --repo "$kdf_dir/cheap" init -q --kdf-memory 8 --kdf-iterations 1 >/dev/null
s=$(now); for i in 1 2 3 4 5; do "$KUBESNAP" --repo "$kdf_dir/default" --no-cache snapshots list --json >/dev/null; done; e=$(now); a=$(secs "$s" "$e")
s=$(now); for i in 1 2 3 4 5; do "$KUBESNAP" --repo "$kdf_dir/cheap" --no-cache snapshots list --json >/dev/null; done; e=$(now); b=$(secs "$s" "$e")
kdf=$(echo "scale=3; ($a - $b) / 5" | bc)

printf '\nhistory: %s (%d days; restore of deployment/%s -n %s from %s)\n\n' "$hist" "$ndays" "$obj_name" "$obj_ns" "$mid_day"
printf '%-9s %14s %10s %10s %11s %10s %13s %12s %14s\n' tool repo_bytes total_s last_day_s unchanged_s restore_s forget_prune_s prune_rss_kib bytes_after
for t in $tools; do
    printf '%-9s %14s %10.2f %10.2f %11.2f %10.2f %13.2f %12s %14s\n' "$t" "${size[$t]}" "${total[$t]}" "${last[$t]}" "${unchanged[$t]}" "${restore[$t]}" "${forget[$t]}" "${forget_rss[$t]}" "${size_after[$t]}"
done
best() { local k=$1 b=""; for t in $tools; do [ "$t" = kubesnap ] && continue; eval "v=\${$k[$t]}"; if [ -z "$b" ] || [ "$(echo "$v < $b" | bc)" = 1 ]; then b=$v; fi; done; echo "$b"; }
printf '\nkubesnap / best peer:\n'
for k in size total last unchanged restore forget forget_rss size_after; do
    b=$(best $k); eval "v=\${$k[kubesnap]}"
    printf '  %-10s %6.2fx  (kubesnap %s, best peer %s)\n' "$k" "$(echo "scale=4; $v / $b" | bc)" "$v" "$b"
done
# diff of the last two days (whole command: process start and the key derivation included).
s=$(now); "$KUBESNAP" --repo "$kdir" --cache-dir "$work/kcache" diff latest~1 latest -q --cluster bench >/dev/null; e=$(now)
printf '\nkubesnap diff of the last two days: %s s (whole command)\n' "$(secs "$s" "$e")"
printf 'kubesnap restore read: %s\n' "$(cat "$work/kubesnap-io.txt" | grep '^io:' || true)"
printf 'kubesnap KDF (Argon2id defaults, m=19 MiB t=2 p=1) per command: %s s\n' "$kdf"
