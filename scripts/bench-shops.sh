#!/usr/bin/env bash
# Benchmark: an ISV's many small shops, mirrored by one or more daemons into one Postgres.
#   scripts/bench-shops.sh [SHOPS] [ORDERS_PER_SHOP]     (default 1,000 shops of 200 orders)
# Environment:
#   DAEMONS     how many daemons share the database (default 1; they share the work by leases)
#   DB          postgres://… of an empty database (default: kw_shops on 127.0.0.1, recreated)
#   LATENCY_MS  round-trip time the simulator adds to every answer (default 50)
#   HOLD_S      how long to keep watching once every stream has caught up (default 660: two
#               schedule intervals of the order and refund lists)
# Every 10 s it reads /status.json, /metrics and / of each daemon and prints their answer
# times, how many streams are within one schedule interval of now (lag ≤ interval + the 60 s
# settle delay) and the daemons' memory. At the end: when every stream first caught up, the
# largest lag while watching, the slowest answer of each endpoint, and each daemon's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
shops="${1:-1000}"
orders="${2:-200}"
daemons="${DAEMONS:-1}"
latency="${LATENCY_MS:-50}"
hold="${HOLD_S:-660}"
default_db=postgres://postgres@127.0.0.1:5432/kw_shops
db="${DB:-$default_db}"
if [ "$db" = "$default_db" ]; then
  psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS kw_shops" \
    -c "CREATE DATABASE kw_shops" 2>/dev/null
fi
cargo build --release --quiet
bin=$PWD/target/release/kwaishop-sync
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

"$bin" sim --shops "$shops" --orders "$orders" --latency-ms "$latency" \
  --config-out "$work/shops.toml" --db "$db" >"$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do
  [ -s "$work/shops.toml" ] && grep -q token_file "$work/shops.toml" && break
  sleep 0.1
done
grep -q token_file "$work/shops.toml" || { echo "the simulator did not start:"; cat "$work/sim.log"; exit 1; }
bases=()
for d in $(seq 1 "$daemons"); do
  port=$((8700 + d))
  cp "$work/shops.toml" "$work/d$d.toml"
  printf '\n[http]\nlisten = "127.0.0.1:%d"\n' "$port" >>"$work/d$d.toml"
  "$bin" run --config "$work/d$d.toml" --log warn >"$work/d$d.log" 2>&1 &
  pids+=($!)
  bases+=("http://127.0.0.1:$port")
done

python3 - "$hold" "${bases[@]}" <<'EOF'
import json, sys, time, urllib.request, subprocess
hold, bases = int(sys.argv[1]), sys.argv[2:]
# Schedule interval of each stream (the defaults) plus the settle delay.
within = {"orders": 360_000, "refunds": 360_000, "items": 3_660_000}
paths = ("/status.json", "/metrics", "/")
start = time.time()
worst = {p: 0.0 for p in paths}
caught_up_at = None
max_lag_after = {}
def daemons():
    out = subprocess.run(["pgrep", "-f", "kwaishop-sync run --config"], capture_output=True, text=True)
    return out.stdout.split()
def mem(pid, key):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(key):
                return int(line.split()[1]) // 1024
    except OSError:
        return None
peak = {}
while True:
    row, report = [], None
    for base in bases:
        for path in paths:
            t = time.time()
            try:
                body = urllib.request.urlopen(base + path, timeout=30).read()
            except Exception as e:
                row.append(f"{path} {type(e).__name__}")
                continue
            ms = 1000 * (time.time() - t)
            if time.time() - start > 15:  # the daemons' first seconds are their start
                worst[path] = max(worst[path], ms)
            row.append(f"{path} {ms:.0f} ms")
            if path == "/status.json" and report is None:
                report = json.loads(body)
    n = ok = 0
    lags = {}
    for shop in (report or {}).get("shops", []):
        for st in shop["streams"]:
            n += 1
            lag = st["lag_ms"]
            if lag is not None and lag <= within[st["stream"]]:
                ok += 1
            lags[st["stream"]] = max(lags.get(st["stream"], 0), lag if lag is not None else 10**13)
    for pid in daemons():
        peak[pid] = max(peak.get(pid, 0), mem(pid, "VmHWM") or 0)
    now = time.time() - start
    if n and ok == n and caught_up_at is None:
        caught_up_at = now
    if caught_up_at is not None:
        for k, v in lags.items():
            max_lag_after[k] = max(max_lag_after.get(k, 0), v)
    rss = " ".join(f"{mem(p, 'VmRSS')} MiB" for p in daemons())
    print(f"{now:5.0f} s  {' · '.join(row)}  within {ok}/{n}  rss {rss}", flush=True)
    if caught_up_at is not None and now - caught_up_at >= hold:
        break
    if now > 4 * 3600:
        print("not every stream caught up within 4 hours")
        sys.exit(1)
    time.sleep(10)
print()
print(f"every stream within one schedule interval of now after {caught_up_at:.0f} s")
print("largest lag while watching: " + ", ".join(f"{k} {v / 1000:.0f} s" for k, v in sorted(max_lag_after.items())))
print("slowest answer: " + ", ".join(f"{p} {v:.0f} ms" for p, v in worst.items()))
print("peak RSS: " + ", ".join(f"{v} MiB" for v in peak.values()))
EOF
