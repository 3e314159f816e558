"""Behaviour of the common role, checked on the converged container."""

import json
import os
import subprocess
import sys

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
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


def converge(**extra):
    """Run the scenario's converge again with extra variables; the completed process."""
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    converge_yml = os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml")
    proc = subprocess.run([playbook, "-i", os.environ["MOLECULE_INVENTORY_FILE"], converge_yml, "-e", json.dumps(extra)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc


def test_switched_off_the_role_leaves_the_hosts_own_setting_alone(host):
    own = "/etc/apt/apt.conf.d/20auto-upgrades"
    try:
        # What the role wrote goes when it is switched off...
        converge(common_unattended_upgrades_enabled=False)
        assert not host.file(own).exists
        assert not host.file("/etc/apt/apt.conf.d/52common-unattended-upgrades").exists
        assert 'APT::Periodic::Unattended-Upgrade "1";' not in host.check_output("apt-config dump")
        # ...but a 20auto-upgrades the operator (or debconf) wrote stays, and
        # with it the periodic upgrades it turns on.
        host.run(f"printf 'APT::Periodic::Update-Package-Lists \"1\";\\nAPT::Periodic::Unattended-Upgrade \"1\";\\n' > {own}")
        converge(common_unattended_upgrades_enabled=False)
        assert host.file(own).exists
        assert 'APT::Periodic::Unattended-Upgrade "1";' in host.check_output("apt-config dump")
    finally:
        converge()
    assert host.file(own).contains("Written by the common role")
