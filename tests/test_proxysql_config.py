"""The configuration the proxysql role derives from the inventory, rendered
without hosts or the ProxySQL binary: the role's defaults and vars and the
stack's group_vars/proxysql.yml go through Ansible's own templating."""

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template

from conftest import ROOT

init_plugin_loader()  # filters (comment) and lookups (env) as in a play

ROLE = ROOT / "roles" / "proxysql"
LOADER = DataLoader()


def trusted(value):
    """Mark every string as a template, as Ansible does for files it loads itself."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [trusted(v) for v in value]
    return value


def role_templar(**overrides):
    variables = {}
    variables.update(LOADER.load_from_file(str(ROLE / "defaults" / "main.yml")))
    variables.update(LOADER.load_from_file(str(ROLE / "vars" / "main.yml")))
    variables.update(
        proxysql_admin_password="admin-secret",
        proxysql_monitor_password="monitor-secret",
        proxysql_mysql_users=[{"username": "wordpress", "password": "app-secret"}],
        ansible_facts={"distribution_release": "trixie"},
        ansible_managed="Ansible managed",
    )
    variables.update(overrides)
    return Templar(loader=LOADER, variables=trusted(variables))


def render(templar, name):
    return templar.template(trust_as_template("{{ %s }}" % name))


# Routing itself (which query reaches which server) is tested against the real
# ProxySQL in molecule/databases, from ProxySQL's own statistics.


def test_both_listeners_are_rendered_and_the_writer_port_can_be_turned_off():
    assert render(role_templar(), "__proxysql_interfaces") == "127.0.0.1:6033;127.0.0.1:6034"
    assert render(role_templar(proxysql_writer_listen_port=0), "__proxysql_interfaces") == "127.0.0.1:6033"


def admin_candidates(cnf_text):
    import base64
    t = role_templar(__proxysql_cnf={"content": base64.b64encode(cnf_text.encode()).decode()})
    return [(c["user"], c["password"]) for c in render(t, "__proxysql_admin_candidates")]


def test_admin_logins_tried_are_the_roles_then_the_previous_runs_then_the_packages():
    previous = 'admin_variables=\n{\n    admin_credentials="proxyadmin:old-secret"\n}\n'
    assert admin_candidates(previous) == [("proxyadmin", "admin-secret"), ("proxyadmin", "old-secret"), ("admin", "admin")]
    package = 'admin_variables=\n{\n\tadmin_credentials="admin:admin"\n}\n'
    assert admin_candidates(package)[1:] == [("admin", "admin"), ("admin", "admin")]
    assert admin_candidates("datadir=\"/var/lib/proxysql\"\n") == [("proxyadmin", "admin-secret"), ("admin", "admin")]


@pytest.mark.parametrize("package_file, repository, source", [
    ("/srv/pkgs/proxysql_3.0.2-debian13_amd64.deb", False, "file"),
    ("/srv/pkgs/proxysql_3.0.2-debian13_amd64.deb", True, "file"),
    ("", True, "repository"),
    ("", False, "none"),
])
def test_install_source_prefers_the_package_file(package_file, repository, source):
    t = role_templar(proxysql_package_file=package_file, proxysql_repository_enabled=repository)
    assert render(t, "__proxysql_install_source") == source


def test_bootstrap_config_replaces_admin_credentials_and_keeps_admin_local():
    t = role_templar(proxysql_listen_address="0.0.0.0")
    text = t.template(trust_as_template((ROLE / "templates/etc/proxysql.cnf.j2").read_text()))
    assert text.startswith("#")
    assert 'admin_credentials="proxyadmin:admin-secret"' in text
    assert '"admin:admin"' not in text
    assert 'mysql_ifaces="127.0.0.1:6032"' in text
    assert 'interfaces="0.0.0.0:6033;0.0.0.0:6034"' in text
    assert 'monitor_username="proxysql_monitor"' in text
    # libconfig syntax: every block opened is closed.
    assert text.count("{") == text.count("}") == 2


# The backends the stack declares (group_vars/proxysql.yml) are rendered from
# real inventories in tests/test_wiring.py.


@pytest.mark.parametrize("deb, repository, source", [
    ("", None, "repository"),  # real inventories: the official repository
    ("/tmp/p.deb", None, "file"),  # bin/lab and bin/test: the package file
    ("/tmp/p.deb", False, "file"),
    ("", False, "none"),  # the role stops and says so
])
def test_stack_takes_proxysql_from_the_package_file_else_the_repository(monkeypatch, deb, repository, source):
    monkeypatch.setenv("PROXYSQL_DEB", deb)
    wiring = LOADER.load_from_file(str(ROOT / "group_vars" / "proxysql.yml"))
    env = {} if repository is None else {"stack_proxysql_repository_enabled": repository}
    variables = {}
    variables.update(LOADER.load_from_file(str(ROLE / "vars" / "main.yml")))
    variables.update(wiring, **env)
    t = Templar(loader=LOADER, variables=trusted(variables))
    assert render(t, "__proxysql_install_source") == source
