#!/usr/bin/python3
"""Reopen a fenced MariaDB primary for writes when, and only when, it is safe.

Every server of this project boots read_only=ON (fencing). This program runs
after MariaDB starts (mariadb-reopen.service, pulled in by mariadb.service)
and opens the server again without a human, on these conditions:

- the last converge made this server the primary (the "role" of the JSON
  settings file, /etc/mysql/mariadb-reopen.json, written by the mariadb role);
- it replicates from nobody;
- every other database answers (it retries until its deadline);
- none of them is writable (a failover happened: stay fenced);
- none holds a transaction this server lacks (a GTID of its gtid_binlog_state
  beyond this server's).

Otherwise it leaves the server read-only and says why in the journal. The
other databases are read with ProxySQL's monitor account (SLAVE MONITOR); the
local server through root's unix socket.

The GTID helpers are also the mariadb role's filter plugin (filter_plugins/),
so the play and this program judge divergence the same way.
"""

import json
import sys
import time

SETTINGS = "/etc/mysql/mariadb-reopen.json"


def parse_gtids(text):
    """'0-31-490,0-32-12' -> {(0, 31): 490, (0, 32): 12} (the highest seq_no per domain and server)."""
    gtids = {}
    for item in (text or "").replace("\n", "").split(","):
        item = item.strip()
        if not item:
            continue
        domain, server, seq = (int(part) for part in item.split("-"))
        gtids[(domain, server)] = max(seq, gtids.get((domain, server), -1))
    return gtids


def gtids_beyond(state, reference):
    """The GTIDs of `state` (a gtid_binlog_state) that `reference` does not hold, as 'd-s-n' strings.

    Empty when `state`'s history is a prefix of `reference`'s: every server's
    last transaction in `state` is also in `reference`. A server that
    `reference` has no entry for is held when its seq_no is not above the
    lowest of `reference`'s domain: a seeded server's state starts at the
    seed's position (one GTID a domain) and, with gtid_strict_mode, a domain's
    seq_nos only grow, so everything up to there came with the seed.
    """
    ref = parse_gtids(reference)
    floor = {}
    for (d, _), n in ref.items():
        floor[d] = min(n, floor.get(d, n))
    beyond = []
    for (d, s), n in sorted(parse_gtids(state).items()):
        held = ref[(d, s)] >= n if (d, s) in ref else n <= floor.get(d, -1)
        if not held:
            beyond.append(f"{d}-{s}-{n}")
    return beyond


def log(message):
    print(message, flush=True)


def main():
    import pymysql  # on the database hosts only (python3-pymysql)

    with open(SETTINGS, encoding="utf-8") as f:
        settings = json.load(f)
    if settings["role"] != "primary":
        log(f"Stays read-only: the last converge made this server a {settings['role']}.")
        return 0
    local = pymysql.connect(unix_socket=settings["socket"], user="root", autocommit=True)
    with local.cursor() as cur:
        cur.execute("SHOW SLAVE STATUS")
        if cur.fetchone():
            log("Stays read-only: this server is configured as a replica.")
            return 0
        cur.execute("SELECT @@GLOBAL.read_only, @@GLOBAL.gtid_binlog_state")
        read_only, own_state = cur.fetchone()
    if not read_only:
        log("Already writable: nothing to do.")
        return 0

    deadline = time.monotonic() + settings["wait_seconds"]
    while True:
        peers, silent = {}, {}
        for peer in settings["peers"]:
            try:
                conn = pymysql.connect(host=peer["address"], port=peer["port"], user=settings["user"],
                                       password=settings["password"], connect_timeout=3, read_timeout=3)
                with conn.cursor() as cur:
                    cur.execute("SELECT @@GLOBAL.read_only, @@GLOBAL.gtid_binlog_state")
                    peers[peer["name"]] = cur.fetchone()
                conn.close()
            except pymysql.MySQLError as exc:
                silent[peer["name"]] = str(exc)
        if not silent or time.monotonic() > deadline:
            break
        time.sleep(2)
    if silent:
        log("Stays read-only: " + "; ".join(f"{name} does not answer ({why})" for name, why in silent.items())
            + ". The next converge (or playbooks/db_promote.yml) decides.")
        return 0
    writable = [name for name, (ro, _) in peers.items() if not ro]
    if writable:
        log(f"Stays read-only: {', '.join(writable)} is writable (a failover happened?). "
            "The next converge makes this server its replica.")
        return 0
    ahead = {name: gtids_beyond(state, own_state) for name, (_, state) in peers.items()}
    ahead = {name: gtids for name, gtids in ahead.items() if gtids}
    if ahead:
        log("Stays read-only: " + "; ".join(f"{name} holds {', '.join(g)} that this server lacks"
                                             for name, g in ahead.items()) + ".")
        return 0
    with local.cursor() as cur:
        cur.execute("SET GLOBAL read_only = OFF")
    log(f"Opened for writes: every other database answers read-only and holds nothing beyond "
        f"{own_state or 'this server'} ({', '.join(sorted(peers)) or 'no other database'}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
