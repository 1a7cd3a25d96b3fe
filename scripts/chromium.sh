#!/usr/bin/env bash
# Makes sure Debian's headless-capable Chromium and its WebDriver server are installed and
# prints the chromedriver path (the console's browser test reads SWITCHBOARD_CHROMEDRIVER).
#
#   export SWITCHBOARD_CHROMEDRIVER="$(scripts/chromium.sh)"
#
# The packages are `chromium` and `chromium-driver` from the distribution (the driver
# matches the browser's version by construction). When either is missing they are
# installed with apt-get (as root) and the change is recorded in
# $SWITCHBOARD_CACHE/system-changes.txt, which scripts/test.sh lists at the end. Idempotent:
# when both are there it only prints the path. Progress goes to stderr.
set -euo pipefail

CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"

log() { echo "chromium.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

driver() { command -v chromedriver 2>/dev/null || { [ -x /usr/bin/chromedriver ] && echo /usr/bin/chromedriver; }; }
browser() { command -v chromium 2>/dev/null || { [ -x /usr/bin/chromium ] && echo /usr/bin/chromium; }; }

if [ -z "$(driver || true)" ] || [ -z "$(browser || true)" ]; then
    [ "$(id -u)" = 0 ] || die "chromium and chromium-driver are missing; install them (apt-get install chromium chromium-driver)"
    log "chromium or chromium-driver is missing: installing them with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
    mkdir -p "$CACHE"
    echo "apt-get install chromium chromium-driver (scripts/chromium.sh, $(date -u +%F))" >>"$CACHE/system-changes.txt"
fi

path="$(driver)" || die "chromedriver not found after installing chromium-driver"
"$path" --version >&2 || die "$path does not run"
"$(browser)" --version >&2 || die "chromium does not run"
echo "$path"
