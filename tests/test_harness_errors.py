"""The harness refuses to run where it cannot work, and says what to do."""

import os
import subprocess

import pytest

from conftest import ROOT


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, **kw)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
@pytest.mark.parametrize("command", ["bin/lab", "bin/test", "bin/setup", "bin/destroy"])
def test_commands_refuse_to_run_without_root(command):
    proc = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(ROOT / command)])
    assert proc.returncode != 0
    assert "must run as root" in proc.stderr
    assert "How to fix: run it again as root" in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the engine script installs packages as root")
def test_an_engine_that_cannot_start_is_reported_with_a_fix(tmp_path):
    # A client that never reaches an engine, and a daemon that dies at once.
    env = dict(os.environ, DOCKER="/bin/false", DOCKERD="/bin/false", DOCKERD_LOG=str(tmp_path / "dockerd.log"))
    proc = run(["bash", "scripts/docker-engine.sh"], env=env)
    assert proc.returncode != 0
    assert "the Docker engine did not start" in proc.stderr
    assert "How to fix:" in proc.stderr
