#!/usr/bin/env bash
# Benchmark: a backfill of a simulated shop by `kwaishop-sync sync --once`, measured against the
# platform's rate limit.
#   scripts/bench-backfill.sh [ORDERS] [DAYS]          (default 200,000 orders over 60 days)
# Environment:
#   LATENCY_MS, JITTER_MS  round-trip time the simulator adds to every answer (default 0)
#   FAULTS                 share of calls that fail (default 0)
#   DB                     postgres://… to mirror into Postgres (default: a fresh SQLite file)
#   CONCURRENCY            `[sync] concurrency`: windows of a stream at once (default: the config's)
# Prints the sync's summary, then: wall time; the time the rate limit allows (per method, its
# minimum number of calls divided by its QPS; the largest); their ratio; calls made ÷ the minimum;
# throttled answers; CPU and bytes written per record; peak RSS; and the CPU the simulator and
# (with DB) the local Postgres server used meanwhile, since all of them share this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
orders="${1:-200000}"
days="${2:-60}"
latency="${LATENCY_MS:-0}"
jitter="${JITTER_MS:-0}"
faults="${FAULTS:-0}"
cargo build --release --quiet
bin=target/release/kwaishop-sync
work=$(mktemp -d)
sim_pid=
trap '[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; rm -rf "$work"' EXIT

db_arg=()
if [ -n "${DB:-}" ]; then db_arg=(--db "$DB"); fi
"$bin" sim --orders "$orders" --days "$days" --no-mutate --latency-ms "$latency" \
  --latency-jitter-ms "$jitter" --faults "$faults" --config-out "$work/bench.toml" \
  "${db_arg[@]}" >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 600); do
  [ -s "$work/bench.toml" ] && grep -q token_file "$work/bench.toml" && break
  sleep 0.1
done
[ -s "$work/bench.toml" ] || { echo "the simulator did not start:"; cat "$work/sim.log"; exit 1; }
if [ -n "${CONCURRENCY:-}" ]; then
  printf '\n[sync]\nconcurrency = %s\n' "$CONCURRENCY" >>"$work/bench.toml"
fi
base_url=$(awk -F'"' '/^base_url/ {print $2; exit}' "$work/bench.toml")
# The generated history reaches the simulator's start; let the settle delay pass.
sleep 61
# CPU seconds so far of the simulator, and of the local Postgres server (its live processes plus
# what its postmaster reaped), from /proc.
cpu_of() {
  python3 - "$sim_pid" <<'PY'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return fields[1], [int(x) for x in fields[11:15]]  # ppid; utime stime cutime cstime
sim = sum(stat(sys.argv[1])[1][:2])
pg = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        comm = open(f"/proc/{pid}/comm").read().strip()
        if comm != "postgres":
            continue
        ppid, t = stat(pid)
        pg += t[0] + t[1] + (t[2] + t[3] if open(f"/proc/{ppid}/comm").read().strip() != "postgres" else 0)
    except OSError:
        pass
print(sim / tick, pg / tick)
PY
}
read -r sim_cpu0 pg_cpu0 < <(cpu_of)
/usr/bin/time -v "$bin" sync --once --config "$work/bench.toml" --log warn \
  >"$work/sync.out" 2>"$work/time.txt" || { cat "$work/sync.out" "$work/time.txt"; exit 1; }
read -r sim_cpu1 pg_cpu1 < <(cpu_of)
echo "$sim_cpu0 $sim_cpu1 $pg_cpu0 $pg_cpu1" >"$work/cpu.txt"
cat "$work/sync.out"
curl -s "$base_url/__sim/calls" >"$work/calls.json"

python3 - "$work" "$orders" "$days" "$latency" "$faults" "${DB:-sqlite}" <<'EOF'
import json, math, os, re, sys
work, orders, days, latency, faults, db = sys.argv[1:]
time = open(f"{work}/time.txt").read()
def field(name):
    m = re.search(rf"{re.escape(name)}: (.*)", time)
    return m.group(1).strip() if m else None
def seconds(clock):
    parts = [float(p) for p in clock.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
wall = seconds(field("Elapsed (wall clock) time (h:mm:ss or m:ss)"))
cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
rss_mib = int(field("Maximum resident set size (kbytes)")) / 1024
written_blocks = int(field("File system outputs") or 0)  # 512-byte blocks
calls = json.load(open(f"{work}/calls.json"))
calls = calls["calls"] if isinstance(calls, dict) else calls
# The sync's summary: shop, stream, pages, received, written, checkpoint, outcome.
received, pages = {}, {}
for line in open(f"{work}/sync.out"):
    cols = line.split()
    if len(cols) >= 5 and cols[1] in ("orders", "refunds", "items") and cols[3].isdigit():
        received[cols[1]] = received.get(cols[1], 0) + int(cols[3])
        pages[cols[1]] = pages.get(cols[1], 0) + int(cols[2])
records = sum(received.values())
mirrored_orders = received.get("orders", 0)
# The platform's default limits (reference §11) and the page sizes the client asks for.
qps = {"open.order.cursor.list": 300, "open.seller.order.refund.pcursor.list": 100,
       "open.item.list.get": 100}
page = {"open.order.cursor.list": 50, "open.seller.order.refund.pcursor.list": 50,
        "open.item.list.get": 50}
made, throttled, minimum = {}, 0, {}
windows = {}
for c in calls:
    m = c["method"]
    if not m.startswith("open."):
        continue
    made[m] = made.get(m, 0) + 1
    if c["outcome"] == "throttled":
        throttled += 1
    if m in page and c["outcome"] == "ok" and m != "open.item.list.get":
        p = json.loads(c.get("param") or "{}")
        key = (m, p.get("beginTime"), p.get("endTime"))
        windows[key] = windows.get(key, 0) + int(c.get("records") or 0)
# Minimum calls per list: every window it read needs one call, and one per page of its records.
for (m, begin, end), n in windows.items():
    minimum[m] = minimum.get(m, 0) + max(1, math.ceil(n / page[m]))
# The item scan reads every page once at the largest page size: its pages are the minimum.
minimum["open.item.list.get"] = max(1, pages.get("items", 0))
allowed = max(minimum.get(m, 0) / q for m, q in qps.items())
total_min = sum(minimum.values())
total_made = sum(made.get(m, 0) for m in minimum)
print(f"db={db} orders={orders} days={days} latency_ms={latency} faults={faults}")
print(f"wall {wall:.1f} s; the rate limit allows {allowed:.1f} s; share of the limit used "
      f"{allowed / wall:.2f}")
for m in qps:
    print(f"  {m}: {made.get(m, 0)} calls, minimum {minimum.get(m, 0)} "
          f"({minimum.get(m, 0) / qps[m]:.1f} s at {qps[m]}/s)")
print(f"calls {total_made} = {total_made / max(total_min, 1):.3f} x the minimum; "
      f"throttled answers {throttled}; other calls {sum(made.values()) - total_made}")
records = max(records, 1)
print(f"records received {records} ({mirrored_orders} orders); CPU {cpu:.1f} s = "
      f"{cpu / records * 1e6:.0f} us per record")
print(f"written by this process {written_blocks * 512 / 1e6:.0f} MB = "
      f"{written_blocks * 512 / max(mirrored_orders, 1) / 1e3:.1f} KB per order "
      f"(SQLite; Postgres writes in its own server)")
print(f"peak RSS {rss_mib:.0f} MiB")
sim0, sim1, pg0, pg1 = (float(x) for x in open(f"{work}/cpu.txt").read().split())
others = (sim1 - sim0) + ((pg1 - pg0) if db != "sqlite" else 0)
print(f"meanwhile: the simulator {sim1 - sim0:.1f} s of CPU"
      + (f", the Postgres server {pg1 - pg0:.1f} s" if db != "sqlite" else "")
      + f"; with this process {cpu + others:.1f} s on {os.cpu_count()} cores: at least "
      f"{(cpu + others) / os.cpu_count():.1f} s of wall time")
EOF
