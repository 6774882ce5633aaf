#!/usr/bin/env bash
# The main job on an embedded default: build kubesnap, create a local-folder repository, take
# two snapshots of the sample cluster dump (the second after a change), then list, diff, show the
# history of one resource and restore it; then serve the sample cluster from the test API server
# and snapshot it live, as a scheduled run would, with retention; change it, find the change with
# diff --live and put it back with restore --apply. Everything lands under ./demo
# (delete it to start over).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "demo: cargo is needed (the Rust toolchain: https://rustup.rs)" >&2; exit 1; }
cargo build --quiet --bin kubesnap
cargo build --quiet -p kubesnap-testserver
ks=target/debug/kubesnap

export KUBESNAP_REPOSITORY="$PWD/demo/repo"
export KUBESNAP_PASSWORD="${KUBESNAP_PASSWORD:-demo password}"
export KUBESNAP_CACHE_DIR="$PWD/demo/cache"
mkdir -p demo
[ -e "$KUBESNAP_REPOSITORY/config" ] || $ks init

echo "== snapshot of examples/sample-dump"
$ks snapshot --from-dir examples/sample-dump --cluster demo --tag sample

echo "== the same cluster a day later: a new image and one more replica"
day2=demo/day2
rm -rf "$day2" && cp -r examples/sample-dump "$day2"
sed -i 's/shop-web:1.14.2/shop-web:1.15.0/; s/replicas: 3/replicas: 4/' "$day2/namespaces/shop/Deployment.apps/web.yaml"
$ks snapshot --from-dir "$day2" --cluster demo --tag sample

echo "== snapshots"
$ks snapshots list
echo "== what changed"
$ks diff latest~1 latest -p --cluster demo
echo "== history of deployment/web"
$ks log deploy/web -n shop --cluster demo
echo "== restore deployment/web as it was before the change"
$ks restore latest~1 deploy/web -n shop --stdout --cluster demo
echo "== check"
$ks check --read-data

echo "== a live cluster: the sample served by the test API server, snapshotted through its API"
rm -f demo/kubeconfig
target/debug/kubesnap-testserver --fixtures examples/sample-dump --write-kubeconfig demo/kubeconfig >demo/server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s demo/kubeconfig ] && break; sleep 0.1; done
$ks snapshot --kubeconfig demo/kubeconfig --cluster demo-live --keep-last 3
$ks snapshots show latest --cluster demo-live

echo "== a change in the live cluster, found by diff --live and put back by restore --apply"
kubectl --kubeconfig demo/kubeconfig -n shop set image deploy/web web=nginx:broken >/dev/null
$ks diff latest --live --cluster demo-live --kubeconfig demo/kubeconfig -p || true
$ks restore latest deploy/web -n shop --cluster demo-live --kubeconfig demo/kubeconfig \
    --apply --existing update --force-conflicts --dry-run
$ks restore latest deploy/web -n shop --cluster demo-live --kubeconfig demo/kubeconfig \
    --apply --existing update --force-conflicts
$ks diff latest --live --cluster demo-live --kubeconfig demo/kubeconfig
