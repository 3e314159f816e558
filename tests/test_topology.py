"""The topology picture in the README is the lab inventory's, drawn by
playbooks/lab_topology.yml: rendering it again from inventory/lab gives the
committed docs/topology.dot (docs/topology.svg is `dot -Tsvg` of it)."""

import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_readme_picture_is_the_lab_inventory(tmp_path):
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(ROOT / "inventory/lab"), str(ROOT / "playbooks/lab_topology.yml"),
         "-e", f"lab_topology_dir={tmp_path}"],
        capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")), check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    drawn = (tmp_path / "topology.dot").read_text()
    assert drawn == (ROOT / "docs/topology.dot").read_text(), \
        "docs/topology.dot is out of date: copy artifacts/lab/topology.{dot,svg} to docs/ after ./bin/lab"
    for host in ("c2", "r1", "r2", "lb1", "web1", "db1"):
        assert f'"{host}"' in drawn
    assert '"net:wpha-lan70" -- "r2"' in drawn and '"r1" -- "net:wpha-lab"' in drawn
    assert "docs/topology.svg" in (ROOT / "README.md").read_text()
