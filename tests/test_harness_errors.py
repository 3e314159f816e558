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


@pytest.mark.skipif(os.geteuid() != 0, reason="bin/test runs as root only")
def test_distros_that_leave_a_scenario_nothing_to_run_is_an_error():
    # Said before any setup: no engine, venv or image is touched.
    proc = run(["bash", "bin/test", "common"], env=dict(os.environ, DISTROS="bookworm"))
    assert proc.returncode != 0
    assert "DISTROS='bookworm' leaves the scenario 'common' nothing to run: it runs on trixie" in proc.stderr
    assert "How to fix:" in proc.stderr


def proxysql_source(project_root, **env):
    """scripts/lib.sh's proxysql_source, run as if the checkout were project_root."""
    script = f'source "{ROOT}/scripts/lib.sh"; PROJECT_ROOT="{project_root}"; proxysql_source; echo "PROXYSQL_DEB=$PROXYSQL_DEB"'
    environ = {k: v for k, v in os.environ.items() if k != "PROXYSQL_DEB"}
    return run(["bash", "-c", script], env=dict(environ, **env))


def test_proxysql_comes_from_the_shared_package_beside_the_checkout(tmp_path):
    (tmp_path / "shared" / "packages").mkdir(parents=True)
    deb = tmp_path / "shared" / "packages" / "proxysql_2.7.1_amd64.deb"
    deb.write_bytes(b"")
    (tmp_path / "main").mkdir()
    proc = proxysql_source(tmp_path / "main")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"PROXYSQL_DEB={deb}"
    assert f"ProxySQL from the package file {deb}" in proc.stderr


def test_proxysql_deb_wins_and_must_name_a_file(tmp_path):
    given = tmp_path / "mine.deb"
    given.write_bytes(b"")
    assert proxysql_source(tmp_path, PROXYSQL_DEB=str(given)).stdout.strip() == f"PROXYSQL_DEB={given}"
    proc = proxysql_source(tmp_path, PROXYSQL_DEB=str(tmp_path / "missing.deb"))
    assert proc.returncode != 0
    assert "PROXYSQL_DEB names no file" in proc.stderr and "How to fix:" in proc.stderr


def test_no_proxysql_package_is_said_loudly(tmp_path):
    (tmp_path / "main").mkdir()
    proc = proxysql_source(tmp_path / "main")
    assert proc.returncode == 0
    assert proc.stdout.strip() == "PROXYSQL_DEB="
    assert "NO PROXYSQL PACKAGE FILE" in proc.stderr
    assert "official repository" in proc.stderr
