#!/usr/bin/env bash
# Installs Debian's `chromium` for the status page's browser test (tests/status_page.rs), unless
# it is already there. Idempotent; uses sudo only when not run as root.
#   scripts/install-chromium.sh
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium: $(command -v chromium)"
  exit 0
fi
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
as_root apt-get update
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
echo "chromium: $(command -v chromium)"
