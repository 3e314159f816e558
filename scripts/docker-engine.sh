#!/usr/bin/env bash
# Install Debian's Docker engine when absent and start dockerd when it is not
# answering. Machines here have no systemd as PID 1, so dockerd is started in the
# background by hand; on a systemd host the unit is used instead.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
require_root docker
require_debian

apt_install docker.io iptables

if "$DOCKER" info >/dev/null 2>&1; then
  exit 0
fi

if [ -d /run/systemd/system ]; then
  log "Starting docker.service"
  systemctl start docker || true
else
  log "Starting dockerd in the background (log: /var/log/dockerd.log)"
  nohup /usr/sbin/dockerd >/var/log/dockerd.log 2>&1 &
fi

for _ in $(seq 1 30); do
  "$DOCKER" info >/dev/null 2>&1 && exit 0
  sleep 1
done
tail -n 20 /var/log/dockerd.log >&2 2>/dev/null || true
die "the Docker engine did not start within 30 s (see /var/log/dockerd.log above)." \
  "check that this machine allows containers (kernel with cgroups and overlayfs, not an unprivileged container itself), then run: make setup"
