"""Each role's interface is stated three times: meta/argument_specs.yml (what
Ansible enforces), defaults/main.yml (the real defaults) and the README's
variable table (what users read). These tests keep the three in step."""

import re

import pytest
import yaml

from conftest import ROOT

ROLES = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/meta/argument_specs.yml"))
README_ROW = re.compile(r"^\|\s*`([a-z0-9_]+)`\s*\|")


def spec_options(role):
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]["main"].get("options", {})


def defaults(role):
    path = ROOT / "roles" / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def readme_variables(role):
    text = (ROOT / "roles" / role / "README.md").read_text()
    return {m.group(1) for line in text.splitlines() if (m := README_ROW.match(line))}


def test_every_role_has_an_interface():
    roles = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
    assert roles == ROLES, "roles without meta/argument_specs.yml: %s" % (set(roles) - set(ROLES))


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_in_the_spec(role):
    missing = set(defaults(role)) - set(spec_options(role))
    assert not missing, f"{role}: defaults not declared in meta/argument_specs.yml: {sorted(missing)}"


@pytest.mark.parametrize("role", ROLES)
def test_every_optional_spec_option_has_a_default(role):
    undefaulted = {
        name
        for name, opt in spec_options(role).items()
        if not opt.get("required", False) and name not in defaults(role)
    }
    assert not undefaulted, f"{role}: optional options without a default in defaults/main.yml: {sorted(undefaulted)}"


@pytest.mark.parametrize("role", ROLES)
def test_required_options_have_no_default(role):
    both = {name for name, opt in spec_options(role).items() if opt.get("required")} & set(defaults(role))
    assert not both, f"{role}: required options must not have a default: {sorted(both)}"


@pytest.mark.parametrize("role", ROLES)
def test_every_role_variable_is_documented_in_its_readme(role):
    documented = readme_variables(role)
    spec = set(spec_options(role))
    assert spec - documented == set(), f"{role}: README lacks {sorted(spec - documented)}"
    assert documented - spec == set(), f"{role}: README documents unknown {sorted(documented - spec)}"


@pytest.mark.parametrize("role", ROLES)
def test_public_variables_carry_the_role_prefix(role):
    bad = [name for name in spec_options(role) if not name.startswith(role + "_")]
    assert not bad, f"{role}: variables without the '{role}_' prefix: {bad}"
