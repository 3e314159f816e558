"""Behaviour of the data tier: MariaDB primary (db1) and replica (db2), seen
from app1 (the application host) and through the roles' own checks.

Tests run in file order; the promotion changes the topology, so it comes last.
Measured figures are printed (pytest -s) and appended to
artifacts/databases-<distro>.txt at the project root.
"""

import json
import os
import pathlib
import re
import subprocess
import time

import pytest

from harness import molecule
from harness.molecule import host

INVENTORY_FILE = os.environ["MOLECULE_INVENTORY_FILE"]
# The directory, so the linked group_vars/host_vars load too.
INVENTORY_DIR = os.path.dirname(INVENTORY_FILE)
ROOT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", pathlib.Path(__file__).resolve().parents[3]))
DISTRO = os.environ.get("MOLECULE_DISTRO", "trixie")
DB1, DB2 = "10.213.30.11", "10.213.30.12"
APP_LOGIN = "-u wordpress -pdbs-app-secret"

testinfra_hosts = ["ansible://dbs-app1?ansible_inventory=" + INVENTORY_FILE]


db1, db2, app1 = host("dbs-db1"), host("dbs-db2"), host("dbs-app1")


def root_sql(h, sql):
    """Run SQL as root through the unix socket; return stdout (tab separated)."""
    return h.check_output("mariadb -N -B -e %s", sql)


def slave_status(h):
    """SHOW SLAVE STATUS, one "Field: value" per line."""
    return h.check_output("mariadb -e %s", "SHOW SLAVE STATUS\\G")


def app_sql(address, sql):
    """Run SQL as the application account over TCP from app1."""
    return app1.run(f"mariadb -h {address} {APP_LOGIN} -N -B -e %s wordpress", sql)


def record(line):
    print(line)
    out = ROOT / "artifacts"
    out.mkdir(exist_ok=True)
    with open(out / f"databases-{DISTRO}.txt", "a") as f:
        f.write(line + "\n")


def playbook(path, *args):
    """Run a playbook against the scenario; return (process, output as one line, seconds)."""
    start = time.monotonic()
    proc = molecule.playbook(path, *args)
    # Messages wrapped over lines joined again.
    return proc, " ".join(proc.output.split()), time.monotonic() - start


def test_root_logs_in_through_the_socket_only():
    assert root_sql(db1, "SELECT CURRENT_USER()").strip() == "root@localhost"
    # Over TCP, from another host and from the server itself, root does not exist.
    assert app1.run(f"mariadb -h {DB1} -u root -N -e 'SELECT 1'").rc != 0
    assert db1.run(f"mariadb -h {DB1} -u root -N -e 'SELECT 1'").rc != 0
    accounts = root_sql(db1, "SELECT CONCAT(user, '@', host) FROM mysql.user WHERE user IN ('root', '')")
    assert accounts.split() == ["root@localhost"]
    assert "test" not in root_sql(db1, "SHOW DATABASES").split()


def test_application_account_is_limited_to_its_database():
    assert app_sql(DB1, "SELECT 1").rc == 0
    denied = app_sql(DB1, "SELECT COUNT(*) FROM mysql.user")
    assert denied.rc != 0 and "denied" in denied.stderr
    # The replication account may replicate and do nothing else.
    repl = app1.run(f"mariadb -h {DB1} -u replication -pdbs-repl-secret -N -e 'SELECT COUNT(*) FROM wordpress.seed_proof'")
    assert repl.rc != 0 and "denied" in repl.stderr


def test_replica_started_with_the_data_the_primary_held_before_it_joined():
    # converge.yml wrote these 1000 rows on db1 with sql_log_bin=0 before db2
    # existed: they are in no binlog, so replaying the binlog cannot have
    # brought them; only the seed dump can.
    assert root_sql(db1, "SELECT COUNT(*) FROM wordpress.seed_proof").strip() == "1000"
    binlog = db1.check_output("mariadb-binlog /var/lib/mysql/mysql-bin.[0-9]* | grep -c seed_proof || true")
    assert binlog.strip() == "0"
    assert root_sql(db2, "SELECT COUNT(*), SUM(id) FROM wordpress.seed_proof").split() == ["1000", "500500"]


def test_replica_replicates_by_gtid_and_is_read_only():
    status = slave_status(db2)
    assert "Using_Gtid: Slave_Pos" in status
    assert f"Master_Host: {DB1}" in status
    assert root_sql(db2, "SELECT @@read_only, @@log_bin, @@server_id").split()[:2] == ["1", "1"]
    assert root_sql(db1, "SELECT @@read_only").strip() == "0"
    assert root_sql(db1, "SELECT @@server_id") != root_sql(db2, "SELECT @@server_id")


def test_row_written_on_the_primary_is_on_the_replica_within_one_second():
    app_sql(DB1, "CREATE TABLE IF NOT EXISTS lag_probe (id INT AUTO_INCREMENT PRIMARY KEY, token VARCHAR(40))")
    # The table itself first reaches the replica (a DDL: file creation and
    # fsync there); rows are measured once it exists.
    start = time.monotonic()
    pos = root_sql(db1, "SELECT @@gtid_binlog_pos").strip()
    assert root_sql(db2, f"SELECT MASTER_GTID_WAIT('{pos}', 10)").strip() == "0"
    record(f"CREATE TABLE applied on the replica within {1000 * (time.monotonic() - start):.0f} ms (incl. two client runs)")
    # One script on app1: write on db1, then poll db2 every 10 ms; measured
    # there. Prints "<write ms> <replica delay ms>": the write's own time
    # (semi-sync waits for the replica's acknowledgement) and the time from
    # the write's return until the row is visible on the replica.
    script = f"""
set -e
token=$(cat /proc/sys/kernel/random/uuid)
t0=$(date +%s%N)
mariadb -h {DB1} {APP_LOGIN} wordpress -e "INSERT INTO lag_probe (token) VALUES ('$token')"
t1=$(date +%s%N)
for i in $(seq 1 500); do
  n=$(mariadb -h {DB2} {APP_LOGIN} -N -B wordpress -e "SELECT COUNT(*) FROM lag_probe WHERE token='$token'")
  if [ "$n" = 1 ]; then echo $(( (t1 - t0) / 1000000 )) $(( ($(date +%s%N) - t1) / 1000000 )); exit 0; fi
  sleep 0.01
done
echo timeout; exit 1
"""
    app_sql(DB2, "SELECT 1")
    samples = [tuple(map(int, app1.check_output("bash -c %s", script).split())) for _ in range(6)]
    writes, delays = [w for w, _ in samples], [d for _, d in samples]
    record(f"row on replica after the write returned (ms, incl. one client start per 10 ms poll): {delays}, "
           f"max {max(delays)}; the writes themselves took (ms): {writes}")
    assert max(delays) < 1000


def test_write_on_the_replica_fails_with_a_read_only_error():
    result = app_sql(DB2, "INSERT INTO lag_probe (token) VALUES ('on the replica')")
    assert result.rc != 0
    assert "ERROR 1290" in result.stderr and "read-only" in result.stderr
    record("write on replica: " + result.stderr.strip().splitlines()[-1])


def test_semi_synchronous_replication_is_active():
    status = dict(line.split("\t") for line in root_sql(
        db1, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_%'").splitlines())
    assert status["Rpl_semi_sync_master_status"] == "ON"
    assert status["Rpl_semi_sync_master_clients"] == "1"


def test_health_check_fails_clearly_when_the_sql_thread_stops():
    root_sql(db2, "STOP SLAVE SQL_THREAD")
    try:
        proc, out, took = playbook(ROOT / "molecule/databases/health_check.yml")
        assert proc.returncode != 0
        assert "Replication on dbs-db2 is broken" in out
        assert "SQL thread NOT running" in out
        record(f"health check with SQL thread stopped: failed as expected in {took:.1f} s")
    finally:
        root_sql(db2, "START SLAVE SQL_THREAD")
    proc, out, took = playbook(ROOT / "molecule/databases/health_check.yml")
    assert proc.returncode == 0, out
    assert "Replication lag on dbs-db2: 0 s" in out
    record("health check after START SLAVE: " + re.search(r"Replication lag on dbs-db2: [^']*", out).group(0))


@pytest.mark.parametrize("extra, message", [
    ("mariadb_server_id=7", "server_id 7 is set on dbs-db1, dbs-db2"),
    ("mariadb_replication_role=master", "mariadb_replication_role"),
])
def test_invalid_variables_stop_the_play_before_any_change(extra, message):
    before = root_sql(db1, "SELECT @@server_id") + db1.file("/etc/mysql/mariadb.conf.d/60-server.cnf").content_string
    proc, out, _ = playbook(ROOT / "playbooks/databases.yml", "-e", extra)
    assert proc.returncode != 0
    assert message in out
    if "master" in extra:
        assert "primary, replica" in out
    for h in ("dbs-db1", "dbs-db2"):
        assert re.search(rf"{h} : ok=\d+ changed=0 ", out), f"{h} changed something"
    assert before == root_sql(db1, "SELECT @@server_id") + db1.file("/etc/mysql/mariadb.conf.d/60-server.cnf").content_string


# ProxySQL on app1, the real daemon (the package bin/test finds, PROXYSQL_DEB):
# routing is read from its own statistics, never modelled here.
ADMIN = "mariadb -h 127.0.0.1 -P 6032 -u proxyadmin -p{password} -N -B -e %s"


def proxy_sql(sql, port=6033):
    return app1.run(f"mariadb -h 127.0.0.1 -P {port} {APP_LOGIN} -N -B -e %s wordpress", sql)


def admin_sql(sql, password="dbs-admin-secret"):
    return app1.check_output(ADMIN.format(password=password), sql)


def servers():
    """{(hostgroup, server): status} from ProxySQL's runtime."""
    rows = admin_sql("SELECT hostgroup_id, hostname, status FROM runtime_mysql_servers")
    return {(int(hg), host): status for hg, host, status in (r.split("\t") for r in rows.splitlines())}


def served():
    """Queries served per server, from ProxySQL's connection pool statistics."""
    rows = admin_sql("SELECT srv_host, SUM(Queries) FROM stats_mysql_connection_pool GROUP BY srv_host")
    return {host: int(q) for host, q in (r.split("\t") for r in rows.splitlines())}


def pool_status():
    """{(hostgroup, server): state} from ProxySQL's Prometheus metrics (1 ONLINE, 3 OFFLINE_SOFT)."""
    out = app1.check_output("python3 -c %s", "import urllib.request; "
                            "print(urllib.request.urlopen('http://127.0.0.1:6070/metrics', timeout=5).read().decode())")
    found = re.findall(r'^proxysql_connpool_conns_status\{endpoint="([^":]+):\d+",hostgroup="(\d+)"\} (\S+)$', out, re.M)
    return {(int(hg), host): int(float(v)) for host, hg, v in found}


def wait_for(what, predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def recap_changed(out, host):
    return int(re.search(rf"{host} : ok=\d+ changed=(\d+) ", out).group(1))


def test_proxysql_is_installed_from_the_package_and_runs():
    assert app1.package("proxysql").is_installed
    assert app1.service("proxysql").is_running and app1.service("proxysql").is_enabled
    assert "ProxySQL" in app1.check_output("proxysql --version 2>&1")


def test_proxysql_admin_is_local_with_replaced_credentials():
    assert app1.run("mariadb -h 127.0.0.1 -P 6032 -u admin -padmin -e 'SELECT 1'").rc != 0
    assert admin_sql("SELECT 1").strip() == "1"
    listening = app1.check_output("ss -Hltn")
    assert "127.0.0.1:6032" in listening and "0.0.0.0:6032" not in listening
    assert "127.0.0.1:6033" in listening and "127.0.0.1:6034" in listening


def test_the_service_user_can_read_its_configuration():
    cnf = app1.file("/etc/proxysql.cnf")
    assert (cnf.user, cnf.group, cnf.mode) == ("root", "proxysql", 0o640)
    assert app1.run("runuser -u proxysql -- cat /etc/proxysql.cnf").rc == 0


def test_the_monitor_puts_the_writable_server_in_the_writer_hostgroup_by_itself():
    # The role declares every server a reader; read_only decides the writer.
    # Memory may hold the writer too, but only as a copy of what the monitor
    # placed at runtime (taken before each load, so a load keeps it).
    declared = admin_sql("SELECT hostgroup_id, hostname FROM mysql_servers ORDER BY hostgroup_id, hostname").split("\n")
    assert [row for row in declared if row.startswith("20\t")] == [f"20\t{DB1}", f"20\t{DB2}"], declared
    assert wait_for("db1 in the writer hostgroup", lambda: servers().get((10, DB1)) == "ONLINE")
    assert (10, DB2) not in servers()
    assert set(declared) - {f"20\t{DB1}", f"20\t{DB2}"} <= {f"10\t{DB1}"}, declared


def test_proxysql_routes_reads_to_the_replica_and_writes_locks_and_transactions_to_the_primary():
    assert proxy_sql("CREATE TABLE IF NOT EXISTS split_probe (id INT AUTO_INCREMENT PRIMARY KEY, v INT)").rc == 0
    admin_sql("SELECT COUNT(*) FROM stats_mysql_query_digest_reset")
    before = served()
    statements = {
        "INSERT INTO split_probe (v) VALUES (1)": 10,
        "SELECT COUNT(*) FROM seed_proof": 20,
        "SELECT v FROM split_probe WHERE id = 1 FOR UPDATE": 3,
        "SELECT v FROM split_probe WHERE id = 1 LOCK IN SHARE MODE": 3,
        "SELECT GET_LOCK('split_probe', 1)": 3,
        "BEGIN; SELECT MAX(v) FROM split_probe WHERE v > 100; COMMIT": 3,
    }
    for sql, times in statements.items():
        for _ in range(times):
            assert proxy_sql(sql).rc == 0, sql
    # The writer port: every query to the primary, plain SELECTs too.
    for _ in range(5):
        assert proxy_sql("SELECT COUNT(*) FROM seed_proof WHERE id > 10", port=6034).rc == 0
    after = served()
    rows = admin_sql("SELECT hostgroup, digest_text, count_star FROM stats_mysql_query_digest")
    digests = {}
    for hg, text, count in (r.split("\t") for r in rows.splitlines()):
        digests.setdefault(text, {})[int(hg)] = int(count)
    record(f"proxysql digests (hostgroup: count): {digests}; queries per server: "
           f"db1 +{after.get(DB1, 0) - before.get(DB1, 0)}, db2 +{after.get(DB2, 0) - before.get(DB2, 0)}")

    assert digests["INSERT INTO split_probe (v) VALUES (?)"] == {10: 10}
    assert digests["SELECT COUNT(*) FROM seed_proof"] == {20: 20}
    assert digests["SELECT v FROM split_probe WHERE id = ? FOR UPDATE"] == {10: 3}
    assert digests["SELECT v FROM split_probe WHERE id = ? LOCK IN SHARE MODE"] == {10: 3}
    assert digests["SELECT GET_LOCK(?,?)"] == {10: 3}
    # Inside a transaction, a plain SELECT stays on the writer.
    assert digests["SELECT MAX(v) FROM split_probe WHERE v > ?"] == {10: 3}
    # The writer port: plain SELECTs to the writer too.
    assert digests["SELECT COUNT(*) FROM seed_proof WHERE id > ?"] == {10: 5}
    # The reads of the reader hostgroup were served by the replica.
    assert after.get(DB2, 0) - before.get(DB2, 0) >= 18


def test_a_lagging_replica_is_shunned_and_comes_back():
    # Real lag: the replica applies events 30 s late (MASTER_DELAY), past the 10 s bound.
    root_sql(db2, "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 30; START SLAVE")
    try:
        assert proxy_sql("INSERT INTO split_probe (v) VALUES (100)").rc == 0
        written = time.monotonic()
        shunned = wait_for("db2 shunned", lambda: servers().get((20, DB2)) == "SHUNNED", timeout=25)
        before = served()
        errors = sum(proxy_sql("SELECT COUNT(*) FROM seed_proof").rc != 0 for _ in range(10))
        after = served()
        assert errors == 0
        assert after.get(DB2, 0) == before.get(DB2, 0), "a shunned replica served reads"
        assert after.get(DB1, 0) - before.get(DB1, 0) >= 10, "reads did not fall back to the primary"
    finally:
        root_sql(db2, "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE")
    caught_up = time.monotonic()
    back = wait_for("db2 back online", lambda: servers().get((20, DB2)) == "ONLINE")
    record(f"proxysql: lagging replica shunned {shunned - written:.1f} s after a write it delays by 30 s "
           f"(bound 10 s), online {back - caught_up:.1f} s after it caught up; reads fell back to the primary meanwhile")


def writer_removals():
    """How often ProxySQL has taken a server out of the writer hostgroup (its log)."""
    return int(app1.run("grep -c 'Removed server at address [0-9]*, hostgroup 10,' /var/lib/proxysql/proxysql.log").stdout.strip() or 0)


def test_a_replica_whose_sql_thread_stopped_leaves_the_readers_and_returns():
    # Its lag is NULL, as when the primary is gone; proxysql-replica-guard tells the two apart.
    # Each of its changes loads the servers to runtime; the writer the monitor
    # placed stays in its hostgroup meanwhile, so writes never miss it.
    removals = writer_removals()
    root_sql(db2, "STOP SLAVE SQL_THREAD")
    stopped = time.monotonic()
    try:
        out = wait_for("db2 out of the readers", lambda: servers().get((20, DB2)) == "OFFLINE_SOFT", timeout=15)
        assert proxy_sql("INSERT INTO split_probe (v) VALUES (6)", port=6034).rc == 0
        before = served()
        assert all(proxy_sql("SELECT COUNT(*) FROM seed_proof").rc == 0 for _ in range(10))
        assert served().get(DB2, 0) == before.get(DB2, 0), "a replica that does not apply served reads"
        assert "SQL thread not running" in admin_sql(f"SELECT comment FROM mysql_servers WHERE hostname = '{DB2}'")
        # What the monitoring host scrapes says so too (3: OFFLINE_SOFT).
        assert pool_status().get((20, DB2)) == 3, pool_status()
    finally:
        root_sql(db2, "START SLAVE SQL_THREAD")
    started = time.monotonic()
    back = wait_for("db2 back in the readers", lambda: servers().get((20, DB2)) == "ONLINE", timeout=15)
    assert pool_status().get((20, DB2)) == 1, pool_status()
    assert proxy_sql("INSERT INTO split_probe (v) VALUES (7)", port=6034).rc == 0
    record(f"replica guard: SQL thread stopped -> out of the readers in {out - stopped:.1f} s; "
           f"started -> back in {back - started:.1f} s; the writer taken out meanwhile {writer_removals() - removals} times")
    assert writer_removals() == removals, "loading the guard's change took the writer out of its hostgroup"
    # The declared servers are as the role wrote them: readers only.
    assert admin_sql("SELECT COUNT(*) FROM mysql_servers WHERE hostgroup_id = 10").strip() == "0"


def test_a_replica_that_lost_its_primary_keeps_serving_reads_and_the_primary_reopens_itself():
    # The primary's MariaDB stops: the replica's IO thread loses it and reports
    # no lag (NULL); with no primary answering it keeps serving reads.
    since = int(time.time())
    db1.check_output("systemctl stop mariadb")
    try:
        wait_for("db2's IO thread to lose db1", lambda: "Slave_IO_Running: Yes" not in slave_status(db2), timeout=30)
        time.sleep(3)  # the replica guard judges every 2 s
        assert servers().get((20, DB2)) == "ONLINE"
        before = served()
        assert all(proxy_sql("SELECT COUNT(*) FROM seed_proof").rc == 0 for _ in range(10))
        assert served().get(DB2, 0) - before.get(DB2, 0) >= 8
    finally:
        db1.check_output("systemctl start mariadb")
    # It boots read-only (fencing); mariadb-reopen opens it: db2 answers read-only and holds nothing more.
    started = time.monotonic()
    reopened = wait_for("db1 writable again", lambda: root_sql(db1, "SELECT @@read_only").strip() == "0", timeout=60)
    assert "Opened for writes" in db1.check_output(f"journalctl -u mariadb-reopen --no-pager --since @{since}")
    # A server shunned for errors is tried again when traffic wants it: a write through ProxySQL.
    writer = wait_for("a write through ProxySQL", lambda: proxy_sql(
        "INSERT INTO split_probe (v) VALUES (4)", port=6034).rc == 0, timeout=30)
    record(f"primary's MariaDB restarted: writable {reopened - started:.1f} s after its start, "
           f"a write through ProxySQL {writer - started:.1f} s after")


def test_proxysql_reads_fall_back_to_the_primary_when_the_replica_stops():
    db2.check_output("systemctl stop mariadb")
    try:
        time.sleep(3)
        # Stopped means stopped: ProxySQL's monitor knocking on 3306 (and a
        # client on the socket) never starts it again (no socket activation).
        db2.run("mariadb -e 'SELECT 1'")
        assert not db2.service("mariadb").is_running
        assert db2.run("systemctl is-active mariadb.socket").stdout.strip() != "active"
        errors = sum(proxy_sql("SELECT COUNT(*) FROM seed_proof").rc != 0 for _ in range(20))
        record(f"proxysql with the replica stopped: {errors} client errors in 20 reads")
        assert errors == 0
    finally:
        db2.check_output("systemctl start mariadb")
    # A server shunned for errors is tried again when traffic wants it.
    wait_for("db2 back online", lambda: proxy_sql("SELECT COUNT(*) FROM seed_proof").rc == 0
             and servers().get((20, DB2)) == "ONLINE", timeout=30)


def test_two_writable_servers_take_no_write_through_proxysql():
    root_sql(db2, "SET GLOBAL read_only = OFF")
    try:
        wait_for("db2 in the writer hostgroup", lambda: servers().get((10, DB2)) == "ONLINE")
        refused = proxy_sql("INSERT INTO split_probe (v) VALUES (2)")
        assert refused.rc != 0 and "hostgroup 10" in refused.stderr, refused.stderr
        record("proxysql with two writable servers: " + refused.stderr.strip().splitlines()[-1])
        assert proxy_sql("SELECT COUNT(*) FROM seed_proof").rc == 0  # reads go on
    finally:
        root_sql(db2, "SET GLOBAL read_only = ON")
    wait_for("db2 out of the writer hostgroup", lambda: (10, DB2) not in servers())
    assert proxy_sql("INSERT INTO split_probe (v) VALUES (3)").rc == 0


def test_a_changed_reader_setting_keeps_the_writer_in_place():
    """A converge that changes the servers loads them to runtime; the writer,
    which the monitor put in the writer hostgroup at runtime only, stays
    there (it was dropped, OFFLINE_HARD, until the next read_only check, and
    writes waited meanwhile)."""
    log = "/var/lib/proxysql/proxysql.log"
    # A load's removal (commit()), not the monitor's own when read_only changes (remove_HGM()).
    removed = "grep -c 'commit(): \\[WARNING\\] Removed server at address .*hostgroup 10,' " + log + " || true"
    assert servers()[(10, DB1)] == "ONLINE"
    before = int(app1.check_output(removed))
    try:
        proc, out, _ = playbook(ROOT / "playbooks/databases.yml", "--limit", "dbs-app1", "-e", "proxysql_replica_read_weight=999")
        assert proc.returncode == 0, out[-3000:]
        assert re.search(r"changed: \[dbs-app1\] => \(item=10\.213\.30\.12:3306 \(replica\)\)", out), out[-3000:]
        assert admin_sql(f"SELECT weight FROM runtime_mysql_servers WHERE hostgroup_id = 20 AND hostname = '{DB2}'").strip() == "999"
        assert int(app1.check_output(removed)) == before, app1.check_output(f"grep 'commit().*Removed server' {log} | tail -3")
        assert servers()[(10, DB1)] == "ONLINE"
    finally:
        proc, out, _ = playbook(ROOT / "playbooks/databases.yml", "--limit", "dbs-app1")
    assert proc.returncode == 0, out[-3000:]
    assert int(app1.check_output(removed)) == before


def test_a_rotated_admin_password_is_applied_through_the_admin_interface():
    proc, out, took = playbook(ROOT / "playbooks/databases.yml", "--limit", "dbs-app1",
                               "-e", "vault_proxysql_admin_password=dbs-rotated-secret")
    assert proc.returncode == 0, out[-3000:]
    try:
        assert admin_sql("SELECT 1", password="dbs-rotated-secret").strip() == "1"
        assert app1.run(ADMIN.format(password="dbs-admin-secret"), "SELECT 1").rc != 0
        assert "dbs-rotated-secret" in app1.file("/etc/proxysql.cnf").content_string
        assert "dbs-rotated-secret" not in out, "the password reached the log"
        record(f"admin password rotated through the admin interface in {took:.1f} s")
    finally:
        proc, out, _ = playbook(ROOT / "playbooks/databases.yml", "--limit", "dbs-app1")
    assert proc.returncode == 0, out[-3000:]
    assert admin_sql("SELECT 1").strip() == "1"


def test_a_host_that_had_proxysql_with_admin_admin_is_taken_over():
    # ProxySQL as the package leaves it: its own proxysql.cnf, a database made from it.
    app1.check_output("systemctl stop proxysql && rm -f /var/lib/proxysql/proxysql.db")
    app1.check_output("dpkg-deb --fsys-tarfile /var/cache/proxysql/*.deb | tar -xO ./etc/proxysql.cnf > /etc/proxysql.cnf")
    app1.check_output("systemctl start proxysql")
    wait_for("the package's admin:admin", lambda: app1.run(
        "mariadb -h 127.0.0.1 -P 6032 -u admin -padmin -N -e 'SELECT 1'").rc == 0)
    proc, out, _ = playbook(ROOT / "playbooks/databases.yml", "--limit", "dbs-app1")
    assert proc.returncode == 0, out[-3000:]
    assert app1.run("mariadb -h 127.0.0.1 -P 6032 -u admin -padmin -e 'SELECT 1'").rc != 0
    assert admin_sql("SELECT 1").strip() == "1"
    wait_for("db1 in the writer hostgroup", lambda: servers().get((10, DB1)) == "ONLINE")
    assert proxy_sql("INSERT INTO split_probe (v) VALUES (4)").rc == 0


@pytest.mark.parametrize("restart", ["systemctl restart proxysql", "docker restart dbs-app1"])
def test_proxysql_keeps_its_configuration_across_restarts(restart):
    if restart.startswith("docker"):
        subprocess.run(["/usr/bin/docker", "restart", "dbs-app1"], check=True, capture_output=True, timeout=120)
        wait_for("app1 to boot", lambda: app1.run("systemctl is-active proxysql").stdout.strip() == "active", timeout=90)
    else:
        app1.check_output(restart)
    wait_for("db1 in the writer hostgroup", lambda: app1.run(ADMIN.format(password="dbs-admin-secret"),
             "SELECT status FROM runtime_mysql_servers WHERE hostgroup_id = 10").stdout.strip() == "ONLINE", timeout=30)
    assert proxy_sql("INSERT INTO split_probe (v) VALUES (5)").rc == 0
    proc, out, _ = playbook(ROOT / "playbooks/databases.yml", "--limit", "dbs-app1")
    assert proc.returncode == 0, out[-3000:]
    assert recap_changed(out, "dbs-app1") == 0, out[-3000:]


# Last: the promotion changes the topology.
backup1 = host("dbs-backup1")


def backup_status():
    return json.loads(backup1.check_output("wpha-backup status"))


def archived(token):
    """Whether an INSERT carrying token is in backup1's binlog archive."""
    return backup1.run("for f in /srv/backups/binlogs/current/*/*.[0-9]*; do mariadb-binlog --base64-output=decode-rows -v $f; done"
                       f" | grep -q {token}").rc == 0


def test_a_full_backup_from_the_replica_restores_into_a_throwaway_server():
    assert backup1.run("wpha-backup full").rc == 0
    full = backup_status()["full"]
    assert full["ok"] and full["source"] == "dbs-db2" and full["why"].startswith("replica dbs-db2 (in sync"), full
    assert re.fullmatch(r"0-\d+-\d+", full["gtid"]), full
    # Encrypted at rest: without the password the repository says nothing.
    assert backup1.run("RESTIC_PASSWORD=wrong restic -r /srv/backups/restic snapshots").rc != 0
    assert backup1.run("grep -rl 'before the replica existed' /srv/backups/restic").rc != 0
    # An incremental on it: only the changes since, from the same server.
    app_sql(DB1, "CREATE TABLE IF NOT EXISTS backup_probe (id INT PRIMARY KEY) ENGINE=InnoDB")
    app_sql(DB1, "INSERT IGNORE INTO backup_probe SELECT seq FROM seq_1_to_500")
    assert backup1.run("wpha-backup incremental").rc == 0
    inc = backup_status()["incremental"]
    assert inc["ok"] and inc["kind"] == "incremental" and inc["source"] == "dbs-db2", inc
    assert inc["bytes"] < full["bytes"], (inc, full)
    app_sql(DB1, "INSERT IGNORE INTO backup_probe SELECT seq FROM seq_501_to_700")
    # Prepared (the full, then the incremental), the archive replayed on top,
    # served by a throw-away mariadbd: all 700 rows.
    assert backup1.run("wpha-backup verify").rc == 0
    verify = backup_status()["verify"]
    record(f"restore test: full {full['snapshot']} ({full['bytes']} bytes, {full['seconds']} s), incremental "
           f"{inc['snapshot']} ({inc['bytes']} bytes), {verify['tables']} tables, {verify['rows']} rows, "
           f"GTID {verify['gtid']} -> {verify['reached']}")
    assert verify["ok"] and verify["tables"] >= 3 and verify["rows"] >= 1700, verify
    assert verify["gtid"] == inc["gtid"] and verify["reached"] != inc["gtid"], verify
    # The uploads too, from the web host.
    assert backup1.run("wpha-backup uploads").rc == 0
    assert backup1.run("restic -r /srv/backups/restic -p /etc/wpha-backup/restic.password dump latest /uploads.tar "
                       "| tar -xOf - ./2026/12/first.txt").stdout == "uploaded before the first backup\n"


def test_the_binlog_archive_follows_a_restarted_primary():
    token = f"archived{time.time_ns()}"
    app_sql(DB1, "CREATE TABLE IF NOT EXISTS archive_probe (token VARCHAR(40))")
    app_sql(DB1, f"INSERT INTO archive_probe VALUES ('{token}-before')")
    deadline = time.monotonic() + 10
    while not archived(f"{token}-before") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert archived(f"{token}-before"), "the archive does not stream from the primary"
    db1.check_output("systemctl restart mariadb")
    start = time.monotonic()
    while root_sql(db1, "SELECT @@read_only").strip() != "0" and time.monotonic() < start + 60:
        time.sleep(0.5)
    assert app_sql(DB1, f"INSERT INTO archive_probe VALUES ('{token}-after')").rc == 0
    while not archived(f"{token}-after") and time.monotonic() < start + 60:
        time.sleep(0.5)
    record(f"binlog archive: a write after the primary's restart archived {time.monotonic() - start:.1f} s after the restart")
    assert archived(f"{token}-after")
    assert backup_status()["archive"]["source"] == "dbs-db1"


def test_promotion_refuses_a_replica_that_is_behind():
    root_sql(db2, "STOP SLAVE SQL_THREAD")
    try:
        app_sql(DB1, "INSERT INTO lag_probe (token) VALUES ('written while db2 is behind')")
        proc, out, _ = playbook(ROOT / "playbooks/db_promote.yml", "-e", "db_promote_target=dbs-db2")
        assert proc.returncode != 0
        assert "Refusing to promote dbs-db2" in out
        record("promotion of a replica that is behind: " + re.search(r"Refusing to promote dbs-db2.*?run again\.", out).group(0))
        assert root_sql(db1, "SELECT @@read_only").strip() == "0"
    finally:
        root_sql(db2, "START SLAVE SQL_THREAD")
        pos = root_sql(db1, "SELECT @@gtid_binlog_pos").strip()
        assert root_sql(db2, f"SELECT MASTER_GTID_WAIT('{pos}', 10)").strip() == "0"


def test_promoted_replica_takes_writes_and_keeps_every_row():
    checksum = "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', id, {cols}))), 0) FROM wordpress.{table}"
    tables = {"seed_proof": "note", "lag_probe": "token"}
    before = {t: root_sql(db1, checksum.format(cols=c, table=t)) for t, c in tables.items()}
    proc, out, took = playbook(ROOT / "playbooks/db_promote.yml", "-e", "db_promote_target=dbs-db2")
    start = time.monotonic()
    assert proc.returncode == 0, out[-3000:]
    record(f"promotion of db2 (playbooks/db_promote.yml): {took:.1f} s")
    # db2 is the primary: writable, replicating from nobody; db1 replicates from it.
    assert root_sql(db2, "SELECT @@read_only").strip() == "0"
    assert root_sql(db2, "SHOW SLAVE STATUS").strip() == ""
    assert root_sql(db1, "SELECT @@read_only").strip() == "1"
    assert f"Master_Host: {DB2}" in slave_status(db1)
    # No row written before the promotion is missing on the new primary.
    for t, c in tables.items():
        assert root_sql(db2, checksum.format(cols=c, table=t)) == before[t], t
    # Writes go through the new primary and reach the old one, now a replica.
    assert app_sql(DB2, "INSERT INTO lag_probe (token) VALUES ('after the promotion')").rc == 0
    assert app_sql(DB1, "INSERT INTO lag_probe (token) VALUES ('on the old primary')").rc != 0
    for _ in range(50):
        if root_sql(db1, "SELECT COUNT(*) FROM wordpress.lag_probe WHERE token = 'after the promotion'").strip() == "1":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the write on the new primary never reached the old primary")
    # ProxySQL followed: the monitor moved the writer to db2, and the readers
    # took the new roles' weights (db2 the primary's small share, db1 a
    # replica's, with its lag bound), declared and running.
    for table in ("mysql_servers", "runtime_mysql_servers"):
        readers = admin_sql(f"SELECT hostname, weight, max_replication_lag FROM {table} WHERE hostgroup_id = 20 ORDER BY hostname")
        assert readers.split("\n") == [f"{DB1}\t1000\t10", f"{DB2}\t1\t0"], table
    followed = wait_for("db2 the only writer in ProxySQL", lambda: [h for (hg, h), st in servers().items()
                                                                   if hg == 10 and st == "ONLINE"] == [DB2])
    record(f"proxysql followed the promotion {followed - start:.1f} s after db_promote.yml returned")
    assert proxy_sql("SELECT @@hostname", port=6034).stdout.strip() == "dbs-db2"
    assert proxy_sql("INSERT INTO lag_probe (token) VALUES ('through proxysql after the promotion')").rc == 0
