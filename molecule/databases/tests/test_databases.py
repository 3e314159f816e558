"""Behaviour of the data tier: MariaDB primary (db1) and replica (db2), seen
from app1 (the application host) and through the roles' own checks.

Tests run in file order; the promotion changes the topology, so it comes last.
Measured figures are printed (pytest -s) and appended to
artifacts/databases-<distro>.txt at the project root.
"""

import os
import pathlib
import re
import subprocess
import time

import pytest
import testinfra

INVENTORY_FILE = os.environ["MOLECULE_INVENTORY_FILE"]
# The directory, so the linked group_vars/host_vars load too.
INVENTORY_DIR = os.path.dirname(INVENTORY_FILE)
ROOT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", pathlib.Path(__file__).resolve().parents[3]))
DISTRO = os.environ.get("MOLECULE_DISTRO", "trixie")
DB1, DB2 = "10.213.30.11", "10.213.30.12"
APP_LOGIN = "-u wordpress -pdbs-app-secret"

testinfra_hosts = ["ansible://dbs-app1?ansible_inventory=" + INVENTORY_FILE]


def node(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY_FILE}")


db1, db2, app1 = node("dbs-db1"), node("dbs-db2"), node("dbs-app1")


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
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(ROOT / "roles"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml")
    start = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", INVENTORY_DIR, str(path), *args],
                          capture_output=True, text=True, env=env, timeout=300)
    # Failures go to stderr; colour codes out, messages wrapped over lines joined again.
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr).split())
    return proc, text, time.monotonic() - start


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


# ProxySQL: only where a package was provided (PROXYSQL_DEB).
def proxysql_or_skip():
    if not app1.exists("proxysql"):
        pytest.skip("ProxySQL is not installed: no package reachable here and PROXYSQL_DEB names no .deb "
                    "(the role skipped it with that reason)")


def proxy_sql(sql):
    return app1.run(f"mariadb -h 127.0.0.1 -P 6033 {APP_LOGIN} -N -B -e %s wordpress", sql)


def admin_sql(sql):
    return app1.check_output("mariadb -h 127.0.0.1 -P 6032 -u proxyadmin -pdbs-admin-secret -N -B -e %s", sql)


def served(hostgroup=None):
    """Queries served per (hostgroup, server) from ProxySQL's connection pool stats."""
    rows = admin_sql("SELECT hostgroup, srv_host, Queries FROM stats_mysql_connection_pool")
    return {(int(hg), host): int(q) for hg, host, q in (r.split("\t") for r in rows.splitlines())}


def delta(before, after, host):
    return sum(q for (hg, h), q in after.items() if h == host) - sum(q for (hg, h), q in before.items() if h == host)


def test_proxysql_admin_is_local_with_replaced_credentials():
    proxysql_or_skip()
    assert app1.run("mariadb -h 127.0.0.1 -P 6032 -u admin -padmin -e 'SELECT 1'").rc != 0
    assert app1.socket("tcp://127.0.0.1:6032").is_listening
    assert not app1.socket("tcp://0.0.0.0:6032").is_listening


def test_proxysql_sends_writes_to_the_primary_and_reads_to_the_replica():
    proxysql_or_skip()
    proxy_sql("CREATE TABLE IF NOT EXISTS split_probe (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    before = served()
    for i in range(10):
        assert proxy_sql(f"INSERT INTO split_probe (v) VALUES ({i})").rc == 0
    mid = served()
    for _ in range(20):
        assert proxy_sql("SELECT COUNT(*) FROM seed_proof").rc == 0
    after_reads = served()
    for _ in range(5):
        assert proxy_sql("BEGIN; SELECT v FROM split_probe WHERE id = 1 FOR UPDATE; COMMIT").rc == 0
    after_locks = served()
    writes_db1, writes_db2 = delta(before, mid, DB1), delta(before, mid, DB2)
    reads_db1, reads_db2 = delta(mid, after_reads, DB1), delta(mid, after_reads, DB2)
    locks_db1, locks_db2 = delta(after_reads, after_locks, DB1), delta(after_reads, after_locks, DB2)
    record(f"proxysql: INSERTs db1={writes_db1} db2={writes_db2}; SELECTs db1={reads_db1} db2={reads_db2}; "
           f"FOR UPDATE db1={locks_db1} db2={locks_db2}")
    assert writes_db1 >= 10 and writes_db2 == 0
    assert reads_db2 >= 18
    assert locks_db1 >= 5 and locks_db2 == 0


def test_proxysql_reads_fall_back_to_the_primary_when_the_replica_stops():
    proxysql_or_skip()
    db2.check_output("systemctl stop mariadb")
    try:
        time.sleep(3)
        errors = sum(proxy_sql("SELECT COUNT(*) FROM seed_proof").rc != 0 for _ in range(20))
        record(f"proxysql with the replica stopped: {errors} client errors in 20 reads")
        assert errors == 0
    finally:
        db2.check_output("systemctl start mariadb")


# Last: the promotion changes the topology.
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
