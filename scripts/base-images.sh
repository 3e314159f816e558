#!/usr/bin/env bash
# Build the Debian base images the Molecule scenarios and the lab use, with
# debootstrap (no image registry is reachable). Built once, then reused.
# Usage: base-images.sh [release ...]   (default: trixie bookworm)
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
require_root images
apt_install debootstrap

MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
releases=("$@")
[ ${#releases[@]} -gt 0 ] || releases=(trixie bookworm)

for release in "${releases[@]}"; do
  image="$IMAGE_REPO:$release"
  if "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
    log "$image exists, reusing it"
    continue
  fi
  log "Building $image with debootstrap"
  rootfs="$(mktemp -d "/var/tmp/rootfs-$release.XXXXXX")"
  # Through the host's apt cache when it runs, so a rebuild downloads nothing.
  proxy=""
  if (exec 3<>"/dev/tcp/127.0.0.1/$APT_CACHE_PORT") 2>/dev/null; then
    proxy="http://127.0.0.1:$APT_CACHE_PORT"
  fi
  http_proxy="$proxy" debootstrap --variant=minbase \
    --include=python3,python3-apt,systemd,systemd-sysv,dbus,iproute2,ca-certificates,procps \
    "$release" "$rootfs" "$MIRROR" >"/var/tmp/debootstrap-$release.log" 2>&1 ||
    die "debootstrap $release failed (log: /var/tmp/debootstrap-$release.log)." "check that $MIRROR is reachable, then run: ./bin/setup"
  install -m 0755 "$PROJECT_ROOT/scripts/files/apt-proxy-detect" "$rootfs/usr/local/bin/apt-proxy-detect"
  printf 'Acquire::http::Proxy-Auto-Detect "/usr/local/bin/apt-proxy-detect";\n' >"$rootfs/etc/apt/apt.conf.d/01proxy-detect"
  # Containers need no getty or udev; masking them keeps boot quick and quiet.
  for unit in getty.target console-getty.service systemd-udevd.service systemd-udev-trigger.service \
    systemd-firstboot.service systemd-modules-load.service; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
  done
  : >"$rootfs/etc/machine-id"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb
  tar -C "$rootfs" -c . | "$DOCKER" import \
    --change 'CMD ["/lib/systemd/systemd"]' - "$image" >/dev/null
  rm -rf "$rootfs"
done
