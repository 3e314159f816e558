"""The top-level group_vars/ must really reach plays run the way users run them:
`ansible-playbook -i inventory/<env> playbooks/x.yml`. Ansible only reads
group_vars next to the inventory source or the playbook, so each inventory links
the shared files in; these tests prove the link works and is present everywhere."""

import json
import subprocess

import pytest
import yaml

from conftest import run_debug_play

INVENTORIES = ["lab", "production.example"]


def shared_group_files(root):
    return sorted(p for p in (root / "group_vars").glob("*.yml"))


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_every_inventory_links_every_shared_group_vars_file(root, inventory):
    for shared in shared_group_files(root):
        link = root / "inventory" / inventory / "group_vars" / shared.stem / "00_project_defaults.yml"
        assert link.is_symlink(), f"{link} missing: link it to {shared}"
        assert link.resolve() == shared.resolve()


def test_shared_defaults_reach_a_lab_play_and_the_lab_overrides_them(root, venv_bin, ansible_env, tmp_path):
    shared = yaml.safe_load((root / "group_vars" / "all.yml").read_text())
    values = run_debug_play(
        root, venv_bin, ansible_env, "lab", tmp_path, ["stack_timezone", "stack_domain", "stack_site_hostname"]
    )
    assert values, "the lab inventory has no hosts"
    for host, msg in values.items():
        # Only the shared file defines stack_timezone: it was loaded.
        assert msg["stack_timezone"] == shared["stack_timezone"], host
        # The lab's own file sorts after the shared one and wins.
        assert msg["stack_domain"] == "example.test", host
        # A shared default built from an overridden value follows the override.
        assert msg["stack_site_hostname"] == "www.example.test", host


def test_shared_defaults_reach_the_production_example(root, venv_bin, ansible_env, tmp_path):
    shared = yaml.safe_load((root / "group_vars" / "all.yml").read_text())
    values = run_debug_play(root, venv_bin, ansible_env, "production.example", tmp_path, ["stack_timezone"])
    assert values
    assert {msg["stack_timezone"] for msg in values.values()} == {shared["stack_timezone"]}


@pytest.mark.parametrize("cwd", [".", "playbooks", "inventory"])
def test_ad_hoc_tools_from_anywhere_in_the_repo_see_what_playbooks_see(root, venv_bin, ansible_env, cwd):
    # Run from the root, ansible-inventory would otherwise read the shared
    # group_vars/ as playbook group_vars, above the inventory's overrides.
    proc = subprocess.run(
        [str(venv_bin / "ansible-inventory"), "-i", str(root / "inventory" / "lab"), "--host", "client1"],
        cwd=root / cwd, env=ansible_env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["stack_domain"] == "example.test"
