"""How a container runs systemd as PID 1 here, defined once in the
lab_docker role (roles/lab_docker/vars/main.yml: __lab_docker_systemd): the
lab's containers take it from there, the bench's own containers (its
baseline and floor) from start_systemd(), and tests/test_containers.py holds
every Molecule platform to it."""

import yaml

from harness import ROOT
from harness.lab import docker

SYSTEMD = yaml.safe_load((ROOT / "roles" / "lab_docker" / "vars" / "main.yml").read_text())["__lab_docker_systemd"]
# The capability systemd needs (the lab adds keepalived's).
CAPABILITIES = ["SYS_ADMIN"]


def run_args(name, image, network):
    """`docker run` arguments for a systemd container on a Docker network."""
    args = ["run", "-d", "--name", name, "--hostname", name, "--network", network,
            "--stop-signal", SYSTEMD["stop_signal"], "--cgroupns", SYSTEMD["cgroupns_mode"]]
    args += [arg for cap in CAPABILITIES for arg in ("--cap-add", cap)]
    args += [arg for opt in SYSTEMD["security_opts"] for arg in ("--security-opt", opt)]
    args += [arg for path in SYSTEMD["tmpfs"] for arg in ("--tmpfs", path)]
    args += [arg for volume in SYSTEMD["volumes"] for arg in ("-v", volume)]
    return args + [image, SYSTEMD["command"]]


def booted(name):
    """Whether systemd in the container finished booting (degraded counts:
    a unit that needs what a container lacks)."""
    state = docker("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
    return state in ("running", "degraded")


def start_systemd(lab, names, image, network):
    """Start systemd containers and wait until each has booted."""
    for name in names:
        docker(*run_args(name, image, network))
    for name in names:
        lab.wait_until(f"systemd in {name}", lambda n=name: booted(n), timeout=60, interval=0.5)
