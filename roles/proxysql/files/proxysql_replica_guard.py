#!/usr/bin/python3
"""Keep replicas whose replication is broken out of ProxySQL's reader hostgroup.

ProxySQL's own lag check sees Seconds_Behind_Master only, and MariaDB reports
it as NULL both when a replica's SQL thread stopped (it serves frozen data)
and when the primary is gone (it serves the last data there is, which is what
visitors should get). This service tells the two apart every few seconds:

- a replica whose SQL or IO thread does not run while its primary answers is
  broken: it falls further behind a primary that takes writes;
- a replica whose primary does not answer is not: with the primary gone (or
  being failed over) it is the freshest copy left.

A replica found broken in two rounds in a row, while ProxySQL's writer stayed
where it was (a switchover stops replication for a moment), is set
OFFLINE_SOFT in the reader hostgroup (no new query;
reads fall back to the primary or to healthy replicas) with the comment
"replication broken: ..."; once both threads run again it is set ONLINE and
ProxySQL's lag check (max_replication_lag) keeps it out until it has caught
up. Changes are loaded to runtime only, never saved to disk: a ProxySQL
restart starts from the declared configuration and this service judges again.

Settings: /etc/proxysql-replica-guard.json (admin and monitor accounts, the
reader hostgroup, the interval). It logs each change to the journal.
"""

import json
import sys
import time

SETTINGS = "/etc/proxysql-replica-guard.json"
MARK = "replication broken: "


def replica_health(settings, address, port):
    """None when healthy (or not a replica), else why the replica is broken."""
    import pymysql

    conn = pymysql.connect(host=address, port=port, user=settings["monitor_user"],
                           password=settings["monitor_password"], connect_timeout=2, read_timeout=3,
                           cursorclass=pymysql.cursors.DictCursor)
    with conn.cursor() as cur:
        cur.execute("SHOW SLAVE STATUS")
        status = cur.fetchone()
    conn.close()
    if not status or (status["Slave_SQL_Running"] == "Yes" and status["Slave_IO_Running"] == "Yes"):
        return None
    # Behind a primary that is gone (or being failed over), this is the freshest copy there is.
    if not answers(settings, status["Master_Host"], int(status["Master_Port"])):
        return None
    if status["Slave_SQL_Running"] != "Yes":
        return f"SQL thread not running ({status.get('Last_SQL_Error') or 'stopped'})"
    return f"IO thread {status['Slave_IO_Running']} ({status.get('Last_IO_Error') or 'stopped'})"


def answers(settings, address, port):
    import pymysql

    try:
        pymysql.connect(host=address, port=port, user=settings["monitor_user"], password=settings["monitor_password"],
                        connect_timeout=1, read_timeout=1).close()
        return True
    except pymysql.MySQLError:
        return False


def decide(servers, verdicts, earlier, stable):
    """The changes to make, [(hostname, port, status, comment)]: a replica
    judged broken in this round and the one before goes OFFLINE_SOFT, a
    replica the guard took out that replicates again goes ONLINE. None while
    the writer moves (not stable): a switchover stops a replica's replication
    for a moment, and a load then could put back the writer it is replacing."""
    if not stable:
        return []
    changes = []
    for hostname, port, status, comment in servers:
        if (hostname, port) not in verdicts:
            continue  # it did not answer: ProxySQL's own monitor's job
        why = verdicts[(hostname, port)]
        if why and earlier.get((hostname, port)) and status == "ONLINE":
            changes.append((hostname, port, "OFFLINE_SOFT", MARK + why[:80]))
        elif not why and status == "OFFLINE_SOFT" and (comment or "").startswith(MARK):
            changes.append((hostname, port, "ONLINE", ""))
    return changes


def writers(settings, admin):
    """The writer hostgroup as ProxySQL's monitor placed it (runtime only)."""
    with admin.cursor() as cur:
        cur.execute("SELECT hostname, port, status FROM runtime_mysql_servers WHERE hostgroup_id = %s "
                    "ORDER BY hostname, port", (settings["writer_hostgroup"],))
        return tuple(tuple(row) for row in cur.fetchall())


def judge(settings, admin, state):
    """One round: judge every reader, then make the changes decide() finds."""
    writers_before = writers(settings, admin)
    with admin.cursor() as cur:
        cur.execute("SELECT hostname, port, status, comment FROM mysql_servers WHERE hostgroup_id = %s",
                    (settings["reader_hostgroup"],))
        servers = [(hostname, int(port), status, comment) for hostname, port, status, comment in cur.fetchall()]
    verdicts = {}
    for hostname, port, _, _ in servers:
        t = time.monotonic()
        try:
            verdicts[(hostname, port)] = replica_health(settings, hostname, port)
        except Exception as exc:  # noqa: BLE001 - a server that does not answer is ProxySQL's own monitor's job
            if time.monotonic() - t > 5:
                print(f"{hostname}:{port} took {time.monotonic() - t:.1f} s to fail: {exc}", flush=True)
    writers_after = writers(settings, admin)
    # The same writer at the last round, at this one's start and now.
    stable = state.get("writers") == writers_before == writers_after
    changes = decide(servers, verdicts, state.get("verdicts", {}), stable)
    state.update(verdicts=verdicts, writers=writers_after)
    if changes:
        apply(settings, admin, servers, changes, writers_after)


def set_readers(cur, reader, rows):
    """Set each (hostname, port, status, comment) of rows in the reader hostgroup, in memory."""
    for hostname, port, status, comment in rows:
        cur.execute("UPDATE mysql_servers SET status = %s, comment = %s "
                    "WHERE hostgroup_id = %s AND hostname = %s AND port = %s",
                    (status, comment, reader, hostname, port))


def apply(settings, admin, servers, changes, expected_writers):
    """Load the changes to runtime. The monitor puts the writable server in the
    writer hostgroup at runtime only: loading the declared servers alone would
    take it out (OFFLINE_HARD) until the monitor's next read_only check, a
    moment in which no write finds a server (the site's read-only page). Its
    runtime row goes along with the load, unless the writer moved since the
    round began (the changes wait for the next round); the declared
    configuration is left as it was."""
    reader, writer = settings["reader_hostgroup"], settings["writer_hostgroup"]
    with admin.cursor() as cur:
        set_readers(cur, reader, changes)
        # Memory may hold an earlier writer (a converge saves runtime to memory).
        cur.execute("DELETE FROM mysql_servers WHERE hostgroup_id = %s", (writer,))
        cur.execute("INSERT INTO mysql_servers (hostgroup_id, hostname, port, gtid_port, status, weight, "
                    "compression, max_connections, max_replication_lag, use_ssl, max_latency_ms, comment) "
                    "SELECT hostgroup_id, hostname, port, gtid_port, status, weight, compression, max_connections, "
                    "max_replication_lag, use_ssl, max_latency_ms, comment FROM runtime_mysql_servers "
                    "WHERE hostgroup_id = %s", (writer,))
        cur.execute("SELECT hostname, port, status FROM mysql_servers WHERE hostgroup_id = %s ORDER BY hostname, port",
                    (writer,))
        copied = tuple(tuple(row) for row in cur.fetchall())
        if copied == expected_writers:
            cur.execute("LOAD MYSQL SERVERS TO RUNTIME")
            for hostname, port, status, comment in changes:
                print(f"{hostname}:{port} -> {status}" + (f" ({comment})" if comment else " (replicating again)"),
                      flush=True)
        else:
            print(f"The writer moved ({expected_writers} -> {copied}): the changes wait for the next round", flush=True)
            changed = {(hostname, port) for hostname, port, _, _ in changes}
            set_readers(cur, reader, [row for row in servers if row[:2] in changed])
        cur.execute("DELETE FROM mysql_servers WHERE hostgroup_id = %s", (writer,))


def main():
    import pymysql

    with open(SETTINGS, encoding="utf-8") as f:
        settings = json.load(f)
    state = {}  # the last round's verdicts and writers
    while True:
        start = time.monotonic()
        try:
            admin = pymysql.connect(host="127.0.0.1", port=settings["admin_port"], user=settings["admin_user"],
                                    password=settings["admin_password"], connect_timeout=2, read_timeout=10,
                                    write_timeout=10, autocommit=None)
            try:
                judge(settings, admin, state)
            finally:
                admin.close()
        except pymysql.MySQLError as exc:
            print(f"ProxySQL's admin interface: {exc}", flush=True)
        took = time.monotonic() - start
        if took > 3 * settings["interval_seconds"]:
            print(f"One round took {took:.1f} s", flush=True)
        time.sleep(settings["interval_seconds"])


if __name__ == "__main__":
    sys.exit(main())
