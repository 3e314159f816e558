"""What the Molecule scenarios' verifiers (molecule/*/tests/) share: their
hosts through testinfra, and playbook runs against the scenario, both from
the inventory Molecule wrote for it."""

import os
import re
import subprocess

import pytest
import testinfra

from harness import BIN, ROOT

INVENTORY_FILE = os.environ.get("MOLECULE_INVENTORY_FILE", "")
# The directory, so the group_vars/ and host_vars/ a scenario links load too.
INVENTORY_DIR = os.path.dirname(INVENTORY_FILE)


def host(name):
    """A scenario host as testinfra reaches it (Ansible's connection)."""
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY_FILE}")


def host_fixture(name):
    """A module-scoped fixture of one scenario host: client = host_fixture("dns-client")."""
    @pytest.fixture(scope="module")
    def fixture():
        return host(name)
    return fixture


def playbook(path, *args, timeout=300):
    """Run a playbook against the scenario (its inventory directory) with the
    project's roles; the completed process, with .output: stdout and stderr
    (where a failed task's message goes) without colour codes."""
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(ROOT / "roles"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", INVENTORY_DIR, str(path), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)
    proc.output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    return proc
