"""The alert rules (roles/prometheus/files/rules/) pass promtool's checks
and its unit tests (tests/prometheus/), and every rule has a test where it
fires and one where it stays quiet."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "roles/prometheus/files/rules/wordpress-ha.yml"
TESTS = ROOT / "tests/prometheus/wordpress-ha.test.yml"


@pytest.fixture(scope="module")
def promtool():
    found = shutil.which("promtool") or str(ROOT / ".cache/promtool/promtool")
    assert os.access(found, os.X_OK), "promtool is missing: run ./bin/setup (it installs it for this test)"
    return found


def test_the_rules_pass_promtool_check(promtool):
    out = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_rules_unit_tests_pass(promtool):
    out = subprocess.run([promtool, "test", "rules", TESTS.name], cwd=TESTS.parent, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_rule_is_tested_firing_and_quiet():
    rules = [r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]
    cases = [c for t in yaml.safe_load(TESTS.read_text())["tests"] for c in t.get("alert_rule_test", [])]
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert rules and not set(rules) - fires, f"rules with no test where they fire: {sorted(set(rules) - fires)}"
    assert not set(rules) - quiet, f"rules with no test where they stay quiet: {sorted(set(rules) - quiet)}"


def test_every_rule_says_what_to_do():
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in (r for r in group["rules"] if "alert" in r):
            assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
