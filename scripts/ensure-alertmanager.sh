#!/usr/bin/env bash
# The alert-ingestion tests run a real Alertmanager (and, when it installs, Prometheus): Debian's packages.
# Install them when missing and apt is usable; otherwise those tests skip and say why. The packages' own
# services are never started here: the tests start their own instances on loopback ports.
set -u
need=""
command -v prometheus-alertmanager >/dev/null 2>&1 || [ -x /usr/bin/prometheus-alertmanager ] || need="prometheus-alertmanager"
command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || need="$need prometheus"
[ -z "$need" ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing $need for the alert tests (apt)…"
  # policy-rc.d 101: do not start the packaged daemons (they would take ports 9090/9093).
  rc=/usr/sbin/policy-rc.d
  created=0
  if [ ! -e "$rc" ]; then printf '#!/bin/sh\nexit 101\n' >"$rc" && chmod +x "$rc" && created=1; fi
  (apt-get install -y -qq --no-install-recommends $need || (apt-get update -qq && apt-get install -y -qq --no-install-recommends $need)) \
    >/dev/null 2>&1 || echo "install failed; the Alertmanager/Prometheus tests may skip"
  [ "$created" = 1 ] && rm -f "$rc"
fi
exit 0
