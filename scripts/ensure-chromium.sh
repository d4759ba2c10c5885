#!/usr/bin/env bash
# Browser tests need Debian's chromium. Install it when it is missing and apt is usable; otherwise the
# browser test skips and says why. Never downloads a browser build of its own.
set -u
# The emoji font makes screenshots show emoji instead of empty boxes.
need=""
[ -x /usr/bin/chromium ] || need="chromium"
[ -d /usr/share/fonts/truetype/noto ] && ls /usr/share/fonts/truetype/noto 2>/dev/null | grep -qi emoji || need="$need fonts-noto-color-emoji"
[ -z "$need" ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing$need for the browser test (apt)…"
  (apt-get update -qq && apt-get install -y -qq $need) >/dev/null 2>&1 || echo "install failed; the browser test may skip"
fi
exit 0
