# shellcheck shell=bash
# Shared helpers for the project's scripts: sourced, never run.
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PROJECT_ROOT
VENV="${VENV:-$PROJECT_ROOT/.venv}"
# Debian's docker.io client: the machine's own docker on PATH may be a newer
# client only, so call the one that matches the engine we start.
DOCKER="${DOCKER:-/usr/bin/docker}"
IMAGE_REPO="${IMAGE_REPO:-wpha/debian}"
APT_CACHE_PORT="${APT_CACHE_PORT:-3142}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() {
  printf 'ERROR: %s\n' "$1" >&2
  [ $# -gt 1 ] && printf 'How to fix: %s\n' "$2" >&2
  exit 1
}

require_root() {
  [ "$(id -u)" -eq 0 ] || die "this command must run as root (it installs packages and starts the Docker engine)." \
    "run it again as root, for example: sudo ./bin/${1:-setup}"
}

require_debian() {
  [ -r /etc/debian_version ] && command -v apt-get >/dev/null ||
    die "this machine is not Debian: the harness installs docker.io, debootstrap and apt-cacher-ng with apt-get." \
      "use a Debian 12 or 13 machine (or VM) as the control node."
}

apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "Installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

activate_venv() {
  [ -x "$VENV/bin/ansible-playbook" ] || die "the project virtualenv is missing ($VENV)." "run: ./bin/setup"
  export PATH="$VENV/bin:$PATH"
  export ANSIBLE_CONFIG="$PROJECT_ROOT/ansible.cfg"
}

# Where ProxySQL comes from for the lab and the suite, in this order: the .deb
# PROXYSQL_DEB names; the package in ../shared/packages/ beside the checkout;
# the official repository (what real users get, and what needs the Internet).
# Exports PROXYSQL_DEB (group_vars/proxysql.yml reads it) and says which.
proxysql_source() {
  if [ -n "${PROXYSQL_DEB:-}" ]; then
    [ -f "$PROXYSQL_DEB" ] || die "PROXYSQL_DEB names no file: $PROXYSQL_DEB" "point it at a proxysql .deb, or unset it"
  else
    # The newest version for this machine's architecture.
    PROXYSQL_DEB="$(find "$PROJECT_ROOT/../shared/packages" -maxdepth 1 -name "proxysql_*_$(dpkg --print-architecture).deb" 2>/dev/null |
      sort -V | tail -n 1 || true)"
  fi
  if [ -n "$PROXYSQL_DEB" ]; then
    PROXYSQL_DEB="$(cd "$(dirname "$PROXYSQL_DEB")" && pwd)/$(basename "$PROXYSQL_DEB")"
    export PROXYSQL_DEB
    log "ProxySQL from the package file $PROXYSQL_DEB"
  else
    export PROXYSQL_DEB=""
    printf '\n\033[1;31m%s\n%s\n%s\033[0m\n\n' \
      "!!! NO PROXYSQL PACKAGE FILE: neither PROXYSQL_DEB nor ../shared/packages/proxysql_*.deb exists." \
      "!!! ProxySQL will be installed from its official repository, which needs the Internet;" \
      "!!! where that is unreachable the converge stops at ProxySQL's install. Set PROXYSQL_DEB=/path/to/proxysql.deb." >&2
  fi
}

# Which lab: LAB_PROFILE=lab (default) is the containers of inventory/lab on
# Debian 13, reached through Docker; LAB_PROFILE=vm is inventory/vm, the
# production path on Debian 12: fully qualified names, SSH as a sudoer,
# secrets in an ansible-vault file, a certificate given as a file, unicast
# VRRP. Exports LAB_PROFILE, LAB_INVENTORY, LAB_STATE (the control node's
# files for that lab, outside git), LAB_DISTRO, and for vm what an operator's
# shell has for real VMs: the vault password file and the SSH key.
lab_profile() {
  LAB_PROFILE="${LAB_PROFILE:-lab}"
  case "$LAB_PROFILE" in
  lab)
    LAB_INVENTORY="$PROJECT_ROOT/inventory/lab"
    LAB_STATE="$PROJECT_ROOT/.lab"
    LAB_DISTRO="${LAB_DISTRO:-trixie}"
    ;;
  vm)
    LAB_INVENTORY="$PROJECT_ROOT/inventory/vm"
    LAB_STATE="$PROJECT_ROOT/.lab-vm"
    LAB_DISTRO="${LAB_DISTRO:-bookworm}"
    # The password that opens the inventory's vault (made once, kept).
    if [ ! -s "$LAB_STATE/vault-password" ]; then
      mkdir -p "$LAB_STATE" && chmod 0700 "$LAB_STATE"
      (umask 077 && head -c 30 /dev/urandom | base64 >"$LAB_STATE/vault-password")
    fi
    export ANSIBLE_VAULT_PASSWORD_FILE="$LAB_STATE/vault-password"
    export ANSIBLE_PRIVATE_KEY_FILE="$LAB_STATE/ssh/id_ed25519"
    # New containers, new host keys: nothing to remember between labs.
    export ANSIBLE_SSH_ARGS="-C -o ControlMaster=auto -o ControlPersist=60s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    ;;
  *) die "LAB_PROFILE=$LAB_PROFILE is not a lab profile." "use LAB_PROFILE=lab (the default) or LAB_PROFILE=vm" ;;
  esac
  # Either lab's containers (over SSH: the VM-like lab, LAB_CONNECTION=ssh)
  # are new, with new host keys. Mitogen, which runs the playbooks, reads
  # this setting; Ansible's own ssh connection (ANSIBLE_STRATEGY=linear)
  # reads the ssh options.
  export ANSIBLE_HOST_KEY_CHECKING=False
  export LAB_PROFILE LAB_INVENTORY LAB_STATE LAB_DISTRO
}
