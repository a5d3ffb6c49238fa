#!/usr/bin/env bash
# Benchmark: peak RSS and wall time of `kwaishop-sync sync --once` over a backfill of a simulated
# shop (default 200,000 orders over 60 days) into SQLite, or Postgres with DB=postgres://…
#   scripts/bench-backfill.sh [ORDERS] [DAYS]
set -euo pipefail
cd "$(dirname "$0")/.."
orders="${1:-200000}"
days="${2:-60}"
cargo build --release --quiet
bin=target/release/kwaishop-sync
work=$(mktemp -d)
trap 'kill "$sim_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

db_arg=()
if [ -n "${DB:-}" ]; then db_arg=(--db "$DB"); fi
"$bin" sim --orders "$orders" --days "$days" --no-mutate --config-out "$work/bench.toml" "${db_arg[@]}" \
  >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 600); do
  [ -s "$work/bench.toml" ] && grep -q token_file "$work/bench.toml" && break
  sleep 0.1
done
[ -s "$work/bench.toml" ] || { echo "the simulator did not start:"; cat "$work/sim.log"; exit 1; }
# The generated history reaches the simulator's start; let the settle delay pass.
sleep 61
/usr/bin/time -v "$bin" sync --once --config "$work/bench.toml" --log warn >"$work/sync.out" 2>"$work/time.txt" || {
  cat "$work/sync.out" "$work/time.txt"; exit 1; }
cat "$work/sync.out"
rss_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
wall=$(awk -F': ' '/Elapsed \(wall clock\) time/ {print $2}' "$work/time.txt")
echo "orders=$orders days=$days peak_rss=$((rss_kib / 1024)) MiB wall=$wall"
