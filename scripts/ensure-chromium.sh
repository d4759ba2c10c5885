#!/usr/bin/env bash
# Browser tests need Debian's chromium. Install it when it is missing and apt is usable; otherwise the
# browser test skips and says why. Never downloads a browser build of its own.
set -u
[ -x /usr/bin/chromium ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing chromium for the browser test (apt)…"
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || echo "chromium install failed; the browser test will skip"
fi
exit 0
