"""Shared fixtures for the host-less test suite."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def venv_bin():
    """Directory holding ansible-playbook: the venv running pytest."""
    return pathlib.Path(sys.executable).parent


def ansible_environ():
    """The environment Ansible runs in for these tests: the project's config,
    and the VM-like lab's vault password once bin/lab made its vault."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    password = ROOT / ".lab-vm" / "vault-password"
    if password.exists():
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(password)
    return env


@pytest.fixture()
def ansible_env(root):
    return ansible_environ()


def run_debug_play(root, venv_bin, ansible_env, inventory, tmp_path, variables, limit=None, check=True):
    """Run a play from playbooks/ (where users' playbooks live) and return the
    values of `variables` for every host, as Ansible resolved them. inventory is
    a name under inventory/ or a path; limit is --limit; with check=False the
    finished process is returned instead."""
    playbook = root / "playbooks" / f".test_group_vars_{os.getpid()}.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Show variables",
                    "hosts": "all",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Show",
                            "ansible.builtin.debug": {
                                "msg": {v: "{{ %s | default('UNDEFINED') }}" % v for v in variables}
                            },
                        }
                    ],
                }
            ]
        )
    )
    env = dict(ansible_env, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    try:
        proc = subprocess.run(
            [
                str(venv_bin / "ansible-playbook"),
                "-i",
                str(root / "inventory" / inventory),
                str(playbook),
                *(["--limit", limit] if limit else []),
                # Nothing is contacted: debug runs on the controller.
                "-e",
                "ansible_connection=local",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        playbook.unlink()
    if not check:
        return proc
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    # One task, but Mitogen's strategy reports its start once per host: the
    # json callback then lists it once per host.
    return {host: res["msg"] for task in result["plays"][0]["tasks"] for host, res in task["hosts"].items()}
