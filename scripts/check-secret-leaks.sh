#!/usr/bin/env bash
# I8: no secret the simulator made up during the test suite (app secret, sign secret, message
# secret, every access and refresh token) appears in any log the suite captured at trace level.
#   scripts/check-secret-leaks.sh DIR   (the KWAISHOP_TEST_LOGS directory)
set -euo pipefail
dir="${1:?usage: check-secret-leaks.sh DIR}"
ledger="$dir/secrets.ledger"
[ -s "$ledger" ] || { echo "no secrets ledger in $dir: were the tests run with KWAISHOP_TEST_LOGS=$dir?" >&2; exit 1; }
logs=$(find "$dir" -name '*.log' -type f | wc -l)
[ "$logs" -gt 0 ] || { echo "no logs captured in $dir" >&2; exit 1; }
sort -u "$ledger" | grep -v '^$' > "$dir/secrets.sorted"
if grep -rFl -f "$dir/secrets.sorted" --include='*.log' "$dir" > "$dir/leaks.txt"; then
  echo "secrets found in these logs:" >&2
  cat "$dir/leaks.txt" >&2
  exit 1
fi
echo "no leaks: $(wc -l < "$dir/secrets.sorted") secrets checked against $logs logs ($(du -sh "$dir" | cut -f1))"
