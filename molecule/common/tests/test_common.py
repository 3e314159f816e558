"""Behaviour of the common role, checked on the converged container."""

import json
import os

import testinfra.utils.ansible_runner

from harness.molecule import playbook

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")


def test_extra_packages_are_usable(host):
    assert host.run("jq --version").rc == 0


def test_local_time_follows_the_configured_zone(host):
    # Berlin is UTC+1 or UTC+2; the abbreviation proves the zone took effect.
    assert host.check_output("date +%Z") in ("CET", "CEST")
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Europe/Berlin"


def test_every_sysctl_line_sets_a_key_this_kernel_has(host):
    conf = host.file("/etc/sysctl.d/60-common-hardening.conf")
    assert conf.contains("^net.ipv4.tcp_syncookies=1$")
    assert conf.contains("^vm.swappiness=10$")
    settings = [line.split("=", 1) for line in conf.content_string.splitlines() if line and not line.startswith("#")]
    assert len(settings) >= 13, settings
    for key, value in settings:
        # The kernel knows the key (sysctl -n fails on an unknown one) and the
        # value is a number, as every one of these keys takes.
        assert host.run(f"sysctl -n {key}").rc == 0, key
        assert value.strip().isdigit(), (key, value)


def test_an_unknown_sysctl_key_fails_the_play_and_keeps_the_file(host):
    before = host.check_output("md5sum /etc/sysctl.d/60-common-hardening.conf")
    proc = converge(expect_failure=True, common_sysctl_extra={"vm.swappiness": 10, "net.ipv4.no_such_key": 1})
    # The message as Ansible prints it (on stderr): colours out, wrapped lines joined.
    said = " ".join(proc.output.split())
    assert "unknown sysctl: net.ipv4.no_such_key" in said, said[-3000:]
    assert host.check_output("md5sum /etc/sysctl.d/60-common-hardening.conf") == before


def test_unattended_upgrades_are_switched_on(host):
    dump = host.check_output("apt-config dump")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    assert "Debian-Security" in dump
    # The real program reads the configuration and takes its origins from it
    # (a dry run: nothing is downloaded or installed).
    run = host.run("unattended-upgrade --dry-run --debug 2>&1")
    assert run.rc == 0, run.stdout[-2000:]
    assert "Allowed origins are:" in run.stdout and "Debian-Security" in run.stdout, run.stdout[-2000:]


def converge(expect_failure=False, **extra):
    """Run the scenario's converge again with extra variables; the completed
    process (it must fail with expect_failure, else succeed)."""
    proc = playbook(os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml"), "-e", json.dumps(extra))
    assert (proc.returncode != 0) == expect_failure, proc.output[-5000:]
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
