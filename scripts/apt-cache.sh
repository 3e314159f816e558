#!/usr/bin/env bash
# A host-side apt cache (apt-cacher-ng on port 3142) that the containers use, so
# repeated test runs don't download the same packages again.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
require_root cache
apt_install apt-cacher-ng

# apt-cacher-ng sends Debian requests to the mirror named in backends_debian
# (ftp.debian.org by default); point it at the mirror this machine reaches.
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
backends=/etc/apt-cacher-ng/backends_debian
if [ "$(grep -v '^#' "$backends" 2>/dev/null | grep -v '^$')" != "$MIRROR/" ]; then
  log "Pointing apt-cacher-ng at $MIRROR"
  printf '# Set by %s\n%s/\n' "$0" "$MIRROR" >"$backends"
  pkill -f '^/usr/sbin/apt-cacher-ng' 2>/dev/null && sleep 1 || true
fi

if (exec 3<>"/dev/tcp/127.0.0.1/$APT_CACHE_PORT") 2>/dev/null; then
  exit 0
fi
if [ -d /run/systemd/system ]; then
  systemctl start apt-cacher-ng
else
  log "Starting apt-cacher-ng in the background"
  mkdir -p /run/apt-cacher-ng /var/cache/apt-cacher-ng /var/log/apt-cacher-ng
  chown apt-cacher-ng: /run/apt-cacher-ng /var/cache/apt-cacher-ng /var/log/apt-cacher-ng 2>/dev/null || true
  /usr/sbin/apt-cacher-ng -c /etc/apt-cacher-ng ForeGround=0 \
    pidfile=/run/apt-cacher-ng/pid SocketPath=/run/apt-cacher-ng/socket
fi
for _ in $(seq 1 10); do
  (exec 3<>"/dev/tcp/127.0.0.1/$APT_CACHE_PORT") 2>/dev/null && exit 0
  sleep 1
done
log "WARNING: apt-cacher-ng did not start; containers will download packages directly"
