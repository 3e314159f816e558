"""Behaviour of the common role, checked on the converged container."""

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    __import__("os").environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")


def test_extra_packages_are_usable(host):
    assert host.run("jq --version").rc == 0


def test_local_time_follows_the_configured_zone(host):
    # Berlin is UTC+1 or UTC+2; the abbreviation proves the zone took effect.
    assert host.check_output("date +%Z") in ("CET", "CEST")
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Europe/Berlin"


def test_sysctl_hardening_file_is_loadable(host):
    conf = host.file("/etc/sysctl.d/60-common-hardening.conf")
    assert conf.contains("^net.ipv4.tcp_syncookies=1$")
    assert conf.contains("^vm.swappiness=10$")
    # Every line must parse: sysctl reports unknown keys or bad syntax.
    out = host.run("sysctl -p /etc/sysctl.d/60-common-hardening.conf --dry-run 2>&1 || true")
    assert "Invalid" not in out.stdout


def test_unattended_upgrades_are_switched_on(host):
    dump = host.check_output("apt-config dump")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    assert "Debian-Security" in dump
    # The real program accepts the configuration (it parses every apt.conf.d file).
    assert host.run("unattended-upgrade --help").rc == 0
