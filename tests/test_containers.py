"""Every container the project starts runs systemd the one way the lab_docker
role defines (roles/lab_docker/vars/main.yml): the Molecule platforms (which
Molecule's own YAML cannot import) are held to it here, the bench builds its
`docker run` from it."""

import re

import pytest
import yaml

from harness import ROOT, containers

SCENARIOS = sorted(ROOT.glob("molecule/*/molecule.yml"))
# The stop signal too: Molecule removes its containers at the end, but a test
# that restarts one (docker restart dbs-app1) gets a clean shutdown, not the
# engine's SIGKILL after 10 s of a systemd that ignores SIGTERM.
KEYS = ("command", "stop_signal", "security_opts", "tmpfs", "volumes", "cgroupns_mode")


def test_every_scenario_is_checked():
    assert len(SCENARIOS) >= 7, SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.parent.name for s in SCENARIOS])
def test_molecule_platforms_run_systemd_as_the_lab_does(scenario):
    platforms = yaml.safe_load(scenario.read_text())["platforms"]
    assert platforms
    for platform in platforms:
        found = {key: platform.get(key) for key in KEYS}
        assert found == {key: containers.SYSTEMD[key] for key in KEYS}, platform["name"]
        assert set(containers.CAPABILITIES) <= set(platform.get("capabilities", [])), platform["name"]


def test_the_bench_runs_its_containers_the_same_way():
    args = containers.run_args("bench-x", "wpha/debian:trixie", "wpha-lab")
    pairs = set(zip(args, args[1:]))
    for path in containers.SYSTEMD["tmpfs"]:
        assert ("--tmpfs", path) in pairs
    for volume in containers.SYSTEMD["volumes"]:
        assert ("-v", volume) in pairs
    assert ("--security-opt", "seccomp=unconfined") in pairs and ("--cgroupns", "host") in pairs
    assert ("--cap-add", "SYS_ADMIN") in pairs and ("--stop-signal", "SIGRTMIN+3") in pairs
    assert args[-2:] == ["wpha/debian:trixie", "/lib/systemd/systemd"]


# Molecule's create play (.config/molecule/create.yml) passes on the platform
# keys it reads, and Molecule itself reads the name and the groups: a key
# outside those would be dropped without a word, so it is refused here.
CREATE = (ROOT / ".config" / "molecule" / "create.yml").read_text()
READ_BY_CREATE = set(re.findall(r"item\.(\w+)", CREATE)) | {"docker_networks"}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.parent.name for s in SCENARIOS])
def test_molecule_platforms_use_only_keys_the_create_play_reads(scenario):
    assert "docker_networks" in CREATE and {"image", "networks", "sysctls"} <= READ_BY_CREATE, READ_BY_CREATE
    for platform in yaml.safe_load(scenario.read_text())["platforms"]:
        # Images are the project's own, built by bin/setup: create.yml builds nothing.
        assert platform.get("pre_build_image") is True, platform["name"]
        unknown = set(platform) - READ_BY_CREATE - {"name", "groups", "pre_build_image"}
        assert not unknown, f"{platform['name']}: {sorted(unknown)} not read by .config/molecule/create.yml"
