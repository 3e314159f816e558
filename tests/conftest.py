"""Shared fixtures for the host-less test suite."""

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def venv_bin():
    """Directory holding ansible-playbook: the venv running pytest."""
    return pathlib.Path(sys.executable).parent


@pytest.fixture()
def ansible_env(root):
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(root / "ansible.cfg")
    return env
