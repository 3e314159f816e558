"""The cross-tier wiring (the top-level group_vars/) renders the same for a host
whether the run covers every host or only that one (--limit, a tier playbook,
rolling_update.yml), and a host the inventory gives no address stops every
playbook before anything changes, naming the host and the variable.

Each value below is what a role turns into a configuration file: HAProxy's
servers (haproxy.cfg), keepalived's peers, Apache's trusted proxies
(remoteip), the uploads peers (SSH keys and rsync targets), MariaDB's grants,
ProxySQL's servers and the zone files. The plays gather no facts, exactly as a
limited run has none for the hosts it leaves out."""

import functools
import hashlib
import shutil
import subprocess

import pytest

from conftest import ansible_environ, run_debug_play

from harness.inventory import Inventory

INVENTORIES = ["lab", "vm", "production.example"]

WIRING = [
    "loadbalancers_web_servers",
    "haproxy_backends",
    "keepalived_unicast_src_ip",
    "keepalived_unicast_peers",
    "keepalived_virtual_router_id",
    "apache_remoteip_trusted_proxies",
    "uploads_sync_peers",
    "wordpress_db_host",
    "php_fpm_max_execution_time",
    "haproxy_timeout_server",
    "varnish_first_byte_timeout",
    "haproxy_page_cache_timeout_server",
    "mariadb_replication_primary_host",
    "mariadb_replication_user_hosts",
    "mariadb_app_user_hosts",
    "mariadb_monitor_user_hosts",
    "mariadb_health_user_hosts",
    "proxysql_backends",
    "proxysql_prometheus_enabled",

    "node_exporter_address_info",
    "bind9_zones",
    "bind9_root_hints",
    "bind9_allow_recursion",
    "firewall_rules",
    "firewall_ssh_sources",
    "prometheus_scrape_jobs",
]


@functools.lru_cache(maxsize=None)
def inventory_hosts(root, inventory):
    """One inventory as Ansible reads it, read once per test session."""
    return Inventory(root / "inventory" / inventory, env=ansible_environ())


@pytest.fixture(scope="module")
def full_runs(root, venv_bin, tmp_path_factory):
    """The wiring of every host of each inventory, rendered in one run over all hosts."""
    env = ansible_environ()
    return {
        inventory: run_debug_play(root, venv_bin, env, inventory, tmp_path_factory.mktemp(inventory), WIRING)
        for inventory in INVENTORIES
    }


@pytest.mark.parametrize("inventory", INVENTORIES)
@pytest.mark.parametrize("group", ["loadbalancers", "webservers", "databases", "dns_authoritative", "dns_resolvers", "monitoring"])
def test_a_limited_run_renders_what_a_full_run_renders(root, venv_bin, ansible_env, tmp_path, full_runs, inventory, group):
    inv = inventory_hosts(root, inventory)
    host = inv.hosts(group)[0]
    limited = run_debug_play(root, venv_bin, ansible_env, inventory, tmp_path, WIRING, limit=host)
    assert list(limited) == [host]
    assert limited[host] == full_runs[inventory][host]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_the_wiring_names_every_peer_from_the_inventory(root, full_runs, inventory):
    inv = inventory_hosts(root, inventory)
    run = full_runs[inventory]
    lbs, webs, dbs = (inv.hosts(g) for g in ("loadbalancers", "webservers", "databases"))
    web = run[webs[0]]
    assert web["apache_remoteip_trusted_proxies"] == inv.addresses("loadbalancers")
    assert [p["address"] for p in web["uploads_sync_peers"]] == inv.addresses("webservers")[1:]
    assert [p["name"] for p in web["uploads_sync_peers"]] == webs[1:]
    assert [b["address"] for b in web["proxysql_backends"]] == inv.addresses("databases")
    lb = run[lbs[0]]
    assert [s["address"] for s in lb["loadbalancers_web_servers"]] == inv.addresses("webservers")
    assert [s["name"] for s in lb["loadbalancers_web_servers"]] == webs
    db = run[dbs[0]]
    assert db["mariadb_health_user_hosts"] == ["localhost"] + inv.addresses("loadbalancers")
    assert db["mariadb_replication_user_hosts"] == inv.addresses("databases")
    assert set(inv.addresses("proxysql")) <= set(db["mariadb_app_user_hosts"])
    # The site's zone has an A record for every host whose name is in it.
    primary_ns = run[inv.hosts("dns_authoritative")[0]]
    site_zone = primary_ns["bind9_zones"][0]
    records = {(r["name"], r["value"]) for r in site_zone["records"] if r["type"] == "A"}
    domain = site_zone["name"]
    for host, hv in inv.hostvars.items():
        fqdn = host if "." in host else f"{host}.{domain}"
        if fqdn.endswith("." + domain):
            assert (fqdn + ".", hv["stack_address"]) in records, host
    # Prometheus scrapes every balancer and database at the address its exporter listens on.
    jobs = {j["job"]: j["targets"] for j in run[inv.hosts("monitoring")[0]]["prometheus_scrape_jobs"]}
    assert jobs["haproxy"] == [{"name": h, "address": f"{a}:8405"} for h, a in zip(lbs, inv.addresses("loadbalancers"))]
    assert jobs["mysqld"] == [{"name": h, "address": f"{a}:9104"} for h, a in zip(dbs, inv.addresses("databases"))]
    # The node exporter on every host but the clients and the lab's routers; the balancers' targets carry the VIP.
    monitored = [h for h in inv.hostvars if h not in inv.hosts("clients") + inv.hosts("routers")]
    vip = {"vip": inv.hostvars[lbs[0]]["stack_vip"]}
    assert sorted(jobs["node"], key=lambda t: t["name"]) == sorted(
        [{"name": h, "address": f'{inv.hostvars[h]["stack_address"]}:9100'} | ({"labels": vip} if h in lbs else {})
         for h in monitored], key=lambda t: t["name"])
    assert [h for h in monitored if run[h]["node_exporter_address_info"] is True] == lbs
    assert jobs["proxysql"] == [{"name": h, "address": f"{a}:6070"} for h, a in zip(inv.hosts("proxysql"), inv.addresses("proxysql"))]
    assert all(run[h]["proxysql_prometheus_enabled"] for h in inv.hosts("proxysql"))
    # Name servers are named once, fully qualified, whatever the inventory's names.
    for ns in site_zone["nameservers"]:
        assert ns.endswith("." + domain + ".") and ns.count("." + domain) == 1, ns


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_the_firewall_lets_in_what_each_tier_needs_and_nothing_else(root, full_runs, inventory):
    inv = inventory_hosts(root, inventory)
    hostvars = inv.hostvars
    run = full_runs[inventory]

    def rules(group):
        return {r["comment"]: r for r in run[inv.hosts(group)[0]]["firewall_rules"]}
    lb, web, db = rules("loadbalancers"), rules("webservers"), rules("databases")
    # Open to everyone only where a rule says so (the firewall role refuses an
    # empty source list otherwise).
    for host, wiring in run.items():
        for rule in wiring["firewall_rules"]:
            assert rule.get("sources") or rule.get("any_source") is True, (host, rule)
    assert lb["the site"]["any_source"] is True and lb["the site"]["ports"] == [80, 443]
    assert lb["VRRP from the other balancers"]["sources"] == inv.addresses("loadbalancers")[1:]
    # The monitoring networks and the monitoring group's hosts scrape the exporters.
    scrapers = hostvars[inv.hosts("loadbalancers")[0]]["stack_monitoring_networks"] + inv.addresses("monitoring")
    assert inv.addresses("monitoring") and lb["HAProxy stats and metrics from the monitoring networks"]["sources"] == scrapers
    # Varnish's exporter beside HAProxy's endpoints (the page cache is on in every inventory).
    assert lb["HAProxy stats and metrics from the monitoring networks"]["ports"][-1] == 9131
    assert set(web) == {"HTTP from the load balancers", "uploads sync from the other web hosts",
                        "uploads pulled over SSH by the backup host", "ProxySQL metrics for monitoring",
                        "PHP-FPM metrics for the monitoring hosts", "host metrics for the monitoring hosts"}
    assert web["ProxySQL metrics for monitoring"] == {
        "comment": "ProxySQL metrics for monitoring", "proto": "tcp", "ports": [6070], "sources": scrapers}
    assert web["PHP-FPM metrics for the monitoring hosts"] == {
        "comment": "PHP-FPM metrics for the monitoring hosts", "proto": "tcp", "ports": [9253], "sources": scrapers}
    assert web["HTTP from the load balancers"]["sources"] == inv.addresses("loadbalancers")
    assert web["uploads sync from the other web hosts"]["sources"] == inv.addresses("webservers")[1:]
    assert web["uploads pulled over SSH by the backup host"]["sources"] == inv.addresses("backups")
    assert set(db) == {"MariaDB from ProxySQL, the balancers and the other databases", "backups pulled over SSH by the backup host",
                       "MariaDB metrics for the monitoring hosts", "host metrics for the monitoring hosts"}
    assert db["MariaDB metrics for the monitoring hosts"] == {
        "comment": "MariaDB metrics for the monitoring hosts", "proto": "tcp", "ports": [9104], "sources": scrapers}
    # Every host of the stack (not the clients, nor the lab's routers) lets
    # the monitoring hosts scrape its node exporter.
    node = {"comment": "host metrics for the monitoring hosts", "proto": "tcp", "ports": [9100], "sources": scrapers}
    for host, wiring in run.items():
        monitored = host not in inv.hosts("clients") + inv.hosts("routers")
        assert (node in wiring["firewall_rules"]) is monitored, host
    # The monitoring host opens nothing else but SSH: its pages are on its loopback.
    assert rules("monitoring") == {node["comment"]: node}
    mariadb = db["MariaDB from ProxySQL, the balancers and the other databases"]
    assert set(mariadb["sources"]) == set(inv.addresses("proxysql") + inv.addresses("loadbalancers")
                                          + inv.addresses("databases")[1:] + inv.addresses("backups"))
    assert mariadb["ports"] == [3306]
    assert db["backups pulled over SSH by the backup host"]["sources"] == inv.addresses("backups")
    # The backup host itself takes SSH from the operators, metrics from the monitoring hosts, nothing else.
    assert list(rules("backups")) == ["host metrics for the monitoring hosts"]
    resolver = rules("dns_resolvers")["recursive DNS for the inventory's hosts"]
    assert set(resolver["sources"]) == {v["stack_address"] for v in hostvars.values()}
    assert rules("dns_authoritative")["authoritative DNS"]["any_source"] is True
    # BIND's exporter on the site's name servers and resolvers only (not a lab's private root and TLD).
    bind = {"comment": "BIND metrics for the monitoring hosts", "proto": "tcp", "ports": [9119], "sources": scrapers}
    for host, wiring in run.items():
        named = host in inv.hosts("dns_authoritative") + inv.hosts("dns_resolvers")
        assert (bind in wiring["firewall_rules"]) is named, host
    # SSH from the admin networks only, on every host; a visitor host opens nothing else.
    for host, wiring in run.items():
        assert wiring["firewall_ssh_sources"] == hostvars[host]["stack_admin_networks"] != [], host
    for client in inv.hosts("clients"):
        assert run[client]["firewall_rules"] == [], client


@pytest.mark.parametrize("inventory", ["lab", "vm"])
def test_keepalived_transport_follows_one_variable(root, full_runs, inventory):
    inv = inventory_hosts(root, inventory)
    lbs = inv.hosts("loadbalancers")
    mode = inv.hostvars[lbs[0]]["stack_vrrp_mode"]
    first = full_runs[inventory][lbs[0]]
    if mode == "unicast":
        assert first["keepalived_unicast_src_ip"] == inv.addresses("loadbalancers")[0]
        assert first["keepalived_unicast_peers"] == inv.addresses("loadbalancers")[1:]
    else:
        assert first["keepalived_unicast_peers"] == []
    assert first["keepalived_virtual_router_id"] == inv.hostvars[lbs[0]]["stack_vrrp_router_id"]


def copy_inventory(root, tmp_path, inventory="lab"):
    dest = tmp_path / "inventory"
    shutil.copytree(root / "inventory" / inventory, dest, symlinks=False)
    return dest


@pytest.mark.parametrize("playbook", ["site.yml", "webservers.yml", "rolling_update.yml", "db_promote.yml"])
def test_a_host_without_an_address_stops_the_play_before_any_change(root, venv_bin, ansible_env, tmp_path, playbook):
    inv = copy_inventory(root, tmp_path)
    hosts = inv / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("db2: {stack_address: 10.213.0.32,", "db2: {"))
    proc = subprocess.run(
        [str(venv_bin / "ansible-playbook"), "-i", str(inv), str(root / "playbooks" / playbook), "--limit", "web1",
         "-e", "ansible_connection=local"],
        cwd=tmp_path, env=ansible_env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "stack_address is missing or not an IPv4 address for: db2." in proc.stdout, proc.stdout[-3000:]
    # Nothing past the check ran.
    assert "Preflight checks of the inventory" in proc.stdout
    assert "changed=0" in proc.stdout and "ok=0" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.parametrize("playbook", ["site.yml", "loadbalancers.yml"])
def test_a_missing_router_id_is_named_before_any_change(root, venv_bin, ansible_env, tmp_path, playbook):
    inv = copy_inventory(root, tmp_path)
    lab = inv / "group_vars" / "all" / "10_lab.yml"
    lab.write_text(lab.read_text().replace("stack_vrrp_router_id:", "# stack_vrrp_router_id:"))
    proc = subprocess.run(
        [str(venv_bin / "ansible-playbook"), "-i", str(inv), str(root / "playbooks" / playbook),
         "-e", "ansible_connection=local"],
        cwd=tmp_path, env=ansible_env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "stack_vrrp_router_id is not set" in proc.stdout, proc.stdout[-3000:]
    assert "changed=0" in proc.stdout and "TASK [common" not in proc.stdout, proc.stdout[-2000:]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_haproxy_waits_longer_than_php_may_run(root, full_runs, inventory):
    inv = inventory_hosts(root, inventory)
    lb = full_runs[inventory][inv.hosts("loadbalancers")[0]]
    web = full_runs[inventory][inv.hosts("webservers")[0]]
    php_limit = int(web["php_fpm_max_execution_time"])
    # roles/php_fpm: request_terminate_timeout = max_execution_time + 30 s.
    terminate = php_limit + 30
    assert lb["haproxy_timeout_server"].endswith("s")
    assert int(lb["haproxy_timeout_server"][:-1]) > terminate, (lb["haproxy_timeout_server"], terminate)
    # Through the page cache, each hop waits longer than the one behind it:
    # HAProxy for the web host, Varnish for HAProxy, HAProxy for Varnish.
    to_web, to_cache = int(lb["haproxy_timeout_server"][:-1]), int(lb["haproxy_page_cache_timeout_server"][:-1])
    assert to_web < int(lb["varnish_first_byte_timeout"]) < to_cache, lb


def test_the_three_tiers_name_one_wordpress_database_account_after_its_password(root, venv_bin, ansible_env, tmp_path):
    """MariaDB's account, ProxySQL's user and wp-config.php's DB_USER: one name,
    wordpress_ and 8 hex digits of the password's SHA-256 (a new password is a
    new account, so a rotation never takes one away from a request)."""
    run = run_debug_play(root, venv_bin, ansible_env, "lab", tmp_path,
                         ["wordpress_db_user", "mariadb_app_user", "proxysql_mysql_users", "vault_wordpress_db_password"])
    inv = inventory_hosts(root, "lab")
    web, db = inv.hosts("webservers")[0], inv.hosts("databases")[0]
    password = run[web]["vault_wordpress_db_password"]
    expected = "wordpress_" + hashlib.sha256(password.encode()).hexdigest()[:8]
    assert run[web]["wordpress_db_user"] == expected
    assert run[db]["mariadb_app_user"] == expected
    assert [u["username"] for u in run[web]["proxysql_mysql_users"]] == [expected]
