"""The configuration the proxysql role derives from the inventory, rendered
without hosts or the ProxySQL binary: the role's defaults and vars and the
stack's group_vars/proxysql.yml go through Ansible's own templating."""

import re

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


BACKENDS = [
    {"address": "10.0.0.31", "role": "primary"},
    {"address": "10.0.0.32", "role": "replica"},
    {"address": "10.0.0.33", "role": "replica", "port": 3307},
]


def test_primary_writes_and_backs_up_reads_replicas_read():
    servers = render(role_templar(proxysql_backends=BACKENDS), "__proxysql_servers")
    rows = {(s["hostgroup_id"], s["hostname"], s["port"]): s for s in servers}
    assert set(rows) == {
        (10, "10.0.0.31", 3306), (20, "10.0.0.31", 3306),
        (20, "10.0.0.32", 3306), (20, "10.0.0.33", 3307),
    }
    # Replicas carry the reads; the primary only a small share (the fallback).
    assert rows[(20, "10.0.0.31", 3306)]["weight"] == 1
    assert rows[(20, "10.0.0.32", 3306)]["weight"] == 1000
    # Lagging replicas are shunned; the primary never is.
    assert rows[(20, "10.0.0.32", 3306)]["max_replication_lag"] == 10
    assert rows[(10, "10.0.0.31", 3306)]["max_replication_lag"] == 0


def test_replicas_are_removed_from_the_writer_hostgroup_after_a_promotion():
    promoted = [dict(b, role="replica") for b in BACKENDS]
    promoted[1]["role"] = "primary"
    stale = render(role_templar(proxysql_backends=promoted), "__proxysql_stale_servers")
    assert {(s["hostgroup_id"], s["hostname"]) for s in stale} == {(10, "10.0.0.31"), (10, "10.0.0.33")}
    servers = render(role_templar(proxysql_backends=promoted), "__proxysql_servers")
    assert [s["hostname"] for s in servers if s["hostgroup_id"] == 10] == ["10.0.0.32"]


def test_custom_hostgroups_follow_through_servers_and_rules():
    t = role_templar(proxysql_backends=BACKENDS[:2], proxysql_writer_hostgroup=1, proxysql_reader_hostgroup=2)
    assert {s["hostgroup_id"] for s in render(t, "__proxysql_servers")} == {1, 2}
    assert [r["destination_hostgroup"] for r in render(t, "__proxysql_rules")] == [1, 2]


def route(rules, digest, default):
    """Where ProxySQL sends a query digest: the first matching rule (all apply), else the default."""
    for rule in sorted(rules, key=lambda r: r["rule_id"]):
        if re.search(rule["match_digest"], digest, re.IGNORECASE):  # ProxySQL's default: CASELESS
            return rule["destination_hostgroup"]
    return default


@pytest.mark.parametrize("digest, hostgroup", [
    ("SELECT * FROM wp_options WHERE option_name = ?", 20),
    ("select ID from wp_posts where post_status = ?", 20),
    ("SELECT meta_value FROM wp_postmeta WHERE post_id = ? FOR UPDATE", 10),
    ("INSERT INTO wp_posts (post_title) VALUES (?)", 10),
    ("UPDATE wp_options SET option_value = ? WHERE option_name = ?", 10),
    ("DELETE FROM wp_comments WHERE comment_ID = ?", 10),
    ("START TRANSACTION", 10),
])
def test_query_rules_split_reads_from_writes(digest, hostgroup):
    t = role_templar(proxysql_backends=BACKENDS)
    rules = render(t, "__proxysql_rules")
    assert all(r["apply"] for r in rules)
    assert route(rules, digest, default=10) == hostgroup


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
    t = role_templar(proxysql_backends=BACKENDS, proxysql_listen_address="0.0.0.0")
    text = t.template(trust_as_template((ROLE / "templates/etc/proxysql.cnf.j2").read_text()))
    assert text.startswith("#")
    assert 'admin_credentials="proxyadmin:admin-secret"' in text
    assert '"admin:admin"' not in text
    assert 'mysql_ifaces="127.0.0.1:6032"' in text
    assert 'interfaces="0.0.0.0:6033"' in text
    assert 'monitor_username="proxysql_monitor"' in text
    # libconfig syntax: every block opened is closed.
    assert text.count("{") == text.count("}") == 2


def test_stack_wiring_builds_backends_from_the_databases_group():
    wiring = LOADER.load_from_file(str(ROOT / "group_vars" / "proxysql.yml"))
    hostvars = {
        "db1": {"stack_address": "10.213.0.31", "mariadb_replication_role": "primary"},
        "db2": {"stack_address": "10.213.0.32", "mariadb_replication_role": "replica"},
        "db3": {"stack_address": "192.0.2.33", "mariadb_port": 3307},
    }
    t = Templar(loader=LOADER, variables=trusted(dict(
        wiring, groups={"databases": ["db1", "db2", "db3"]}, hostvars=hostvars,
        vault_proxysql_admin_password="a", vault_mariadb_monitor_password="m", vault_wordpress_db_password="w")))
    backends = render(t, "proxysql_backends")
    assert backends == [
        {"address": "10.213.0.31", "port": 3306, "role": "primary"},
        {"address": "10.213.0.32", "port": 3306, "role": "replica"},
        # No role set: the mariadb role's default, primary.
        {"address": "192.0.2.33", "port": 3307, "role": "primary"},
    ]
    assert render(t, "proxysql_mysql_users") == [{"username": "wordpress", "password": "w"}]


@pytest.mark.parametrize("deb, repository, enabled", [
    ("", None, False),  # the default: no package file, no Internet
    ("", False, False),
    ("/tmp/p.deb", False, True),
    ("", True, True),
])
def test_stack_knows_whether_proxysql_is_there(monkeypatch, deb, repository, enabled):
    monkeypatch.setenv("PROXYSQL_DEB", deb)
    wiring = LOADER.load_from_file(str(ROOT / "group_vars" / "proxysql.yml"))
    env = {} if repository is None else {"stack_proxysql_repository_enabled": repository}
    t = Templar(loader=LOADER, variables=trusted(dict(wiring, **env)))
    assert render(t, "stack_proxysql_enabled") is enabled
    assert render(t, "proxysql_repository_enabled") is bool(repository)
