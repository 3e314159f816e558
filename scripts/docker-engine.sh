#!/usr/bin/env bash
# Install Debian's Docker engine when absent and start dockerd when it is not
# answering. Machines here have no systemd as PID 1, so dockerd is started in the
# background by hand; on a systemd host the unit is used instead.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
require_root docker
require_debian

apt_install docker.io iptables

# Every systemd container takes several inotify instances; the kernel's default
# of 128 per user stops the 13th or so from booting (it exits at once, code 255).
if [ "$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 1024)" -lt 1024 ]; then
  log "Raising fs.inotify.max_user_instances to 1024 for systemd containers"
  sysctl -qw fs.inotify.max_user_instances=1024 ||
    log "WARNING: could not raise fs.inotify.max_user_instances; large labs may fail to boot"
fi

if "$DOCKER" info >/dev/null 2>&1; then
  exit 0
fi

DOCKERD="${DOCKERD:-/usr/sbin/dockerd}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
pid=""
if [ -d /run/systemd/system ] && [ "$DOCKERD" = /usr/sbin/dockerd ]; then
  log "Starting docker.service"
  systemctl start docker || true
else
  log "Starting dockerd in the background (log: $DOCKERD_LOG)"
  nohup "$DOCKERD" >"$DOCKERD_LOG" 2>&1 &
  pid=$!
fi

for _ in $(seq 1 "${DOCKERD_WAIT:-30}"); do
  "$DOCKER" info >/dev/null 2>&1 && exit 0
  # A daemon that already died will not answer later: say so now.
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then break; fi
  sleep 1
done
tail -n 20 "$DOCKERD_LOG" >&2 2>/dev/null || true
die "the Docker engine did not start (see $DOCKERD_LOG above)." \
  "check that this machine can run containers (cgroups, overlayfs, iptables; not itself an unprivileged container), then run: ./bin/setup"
