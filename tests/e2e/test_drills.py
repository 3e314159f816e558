"""Failover drills: a fault is injected while a bounded request loop runs from
the client against the VIP; each drill reports requests sent, requests failed
and the longest outage (artifacts/e2e/<drill>.json). They run in this file's
order: the database drills last, ending with the lab as the inventory says.
The drills of routine work (marked routine: a rolling update, a restart, a
rotation) run before the others, inside the window in which the quiet check
(test_monitoring.py) holds the lab to alerting nothing."""

import contextlib
import json
import re
import secrets
import threading
import time

import pytest

from conftest import report
from harness.lab import docker

pytestmark = pytest.mark.fault

# Long enough for the fault (3 s in), the takeover and several seconds of
# service after it: a takeover takes at most ~1 s (bin/bench).
LOOP_SECONDS = 12
LOOP_INTERVAL = 0.1


def loop_during(lab, client, url, fault, settle=3.0):
    """Start the request loop, inject the fault `settle` seconds in, return the loop's figures."""
    result = {}

    def run():
        result.update(lab.python(client, "request_loop.py", url, LOOP_SECONDS, LOOP_INTERVAL, timeout=LOOP_SECONDS + 60))

    thread = threading.Thread(target=run)
    thread.start()
    threading.Event().wait(settle)
    fault()
    thread.join(LOOP_SECONDS + 90)
    assert result, "the request loop returned nothing"
    return result


@contextlib.contextmanager
def background_loop(lab, host, script, args, max_seconds, warmup=0.0):
    """Run one of tests/e2e's bounded loop scripts on host for as long as the
    with-block lasts (at most max_seconds); `args(stopfile)` gives its
    arguments. Its figures land in the yielded dict."""
    stopfile = f"/tmp/e2e-stop-{script.removesuffix('.py')}-{time.monotonic_ns()}"
    figures = {}

    def run():
        figures.update(lab.python(host, script, *args(stopfile), timeout=max_seconds + 60))

    thread = threading.Thread(target=run)
    thread.start()
    threading.Event().wait(warmup)
    try:
        yield figures
    finally:
        lab.sh(host, f"touch {stopfile}")
        thread.join(max_seconds + 90)
        lab.sh(host, f"rm -f {stopfile}")
    assert figures, f"{script} on {host} returned nothing"


def request_loop(lab, client, url, interval=LOOP_INTERVAL, max_seconds=400, login=""):
    """Page views from the client (request_loop.py), started 2 s before the
    with-block; with login (USER:PASSWORD), a logged-in user's."""
    return background_loop(lab, client, "request_loop.py", lambda stop: (url, max_seconds, interval, "", stop, login),
                           max_seconds, warmup=2)


@contextlib.contextmanager
def visitors_and_an_author(lab, client, url):
    """Two request loops from the client while the with-block lasts: page
    views past the page cache, and the site's admin logged in."""
    admin = lab.hostvars[lab.hosts("webservers")[0]].get("wordpress_admin_user", "admin")
    with request_loop(lab, client, url) as visitors, \
            request_loop(lab, client, url, interval=0.2, login=f"{admin}:{lab.secret('wordpress_admin_password')}") as author:
        yield visitors, author


@pytest.fixture()
def restart_after(lab):
    stopped = []
    yield stopped.append
    for host in stopped:
        docker("start", host, check=False)
        lab.wait_until(f"{host} to boot", lambda: lab.sh(host, "systemctl is-system-running", check=False).stdout.strip()
                       in ("running", "degraded"), timeout=120)


# How the active balancer goes: a graceful stop (keepalived sends its priority-0
# advert, bin/bench measures a takeover of ~0.05 s) or a hard kill (the backup
# waits out the missed adverts, ~0.9 s). Only requests in flight at that
# moment may fail: urllib opens a new connection per request, and a SYN to the
# VIP while nobody holds it is answered after TCP's 1 s retransmission, within
# the loop's 2 s timeout. A request the leaving balancer had accepted is lost
# with its connection (the other balancer has no state for it): a reset, or,
# once the leaving host no longer holds the VIP to answer from, the loop's 2 s
# timeout; CI 2026-12-05 saw one such timeout on a graceful stop in each lab.
# Hence the outage bound: that one timeout plus the loop's interval.
@pytest.mark.parametrize("how, max_failed, max_outage_s", [("stop", 1, 2.2), ("kill", 2, 2.2)])
def test_losing_the_active_load_balancer_moves_the_vip_and_it_returns(lab, client, site_url, how, max_failed, max_outage_s):
    url, _ = site_url
    master = next(h for h in lab.hosts("loadbalancers") if lab.holds_vip(h))
    backup = next(h for h in lab.hosts("loadbalancers") if h != master)

    def fault():
        docker(*(["stop", "-t", "10"] if how == "stop" else ["kill"]), master, check=True)

    try:
        figures = loop_during(lab, client, url, fault)
        figures["vip_on_backup"] = lab.holds_vip(backup)
    finally:
        docker("start", master, check=False)
    report(f"drill_{how}_active_lb", figures)
    assert figures["vip_on_backup"]
    # Enough requests for the bounds to mean something: one at least every
    # 0.2 s over the loop (the loop's pace is one per 0.1 s; a slower machine
    # sent 90 in 12 s on the VM-like lab, CI 2026-12-07, 101-109 on the lab).
    assert figures["sent"] >= figures["duration_s"] / 0.2, figures
    assert figures["failed"] <= max_failed, figures
    assert figures["longest_outage_s"] <= max_outage_s, figures
    # With preempt (the stack's default) the VIP moves back to the preferred
    # master once it is up; waiting for it here also keeps the move out of the
    # next drill's request loop.
    preferred = lab.hosts("loadbalancers")[0]
    lab.wait_until(f"the VIP back on {preferred}", lambda: lab.holds_vip(preferred), timeout=120)
    threading.Event().wait(2)
    assert [h for h in lab.hosts("loadbalancers") if lab.holds_vip(h)] == [preferred]


def test_stopping_a_web_host_costs_no_request(lab, client, site_url, restart_after):
    url, _ = site_url
    web = lab.hosts("webservers")[0]

    def fault():
        restart_after(web)
        docker("stop", "-t", "10", web, check=True)

    figures = loop_during(lab, client, url, fault)
    report("drill_stop_web1", figures)
    assert figures["sent"] > 50
    assert figures["failed"] == 0, figures


def wait_replica_in_readers(lab, replica, what, timeout):
    """Wait until the replica is ONLINE in every ProxySQL's readers; the seconds it took."""
    started = time.monotonic()
    lab.wait_until(what, lambda: all(
        lab.proxysql_readers(web).get(lab.address(replica)) == "ONLINE" for web in lab.hosts("proxysql")), timeout=timeout)
    return round(time.monotonic() - started, 1)


def test_stopping_the_replica_keeps_the_site_serving(lab, client, site_url, restart_after):
    url, _ = site_url
    replica = next(h for h in lab.hosts("databases") if lab.hostvars[h].get("mariadb_replication_role") == "replica")

    def fault():
        restart_after(replica)
        docker("stop", "-t", "10", replica, check=True)

    figures = loop_during(lab, client, url, fault)
    # The drill ends when the replica serves reads again, as an operator
    # would wait for before the next change (and the next drill needs).
    docker("start", replica, check=False)
    figures["started_to_back_in_readers_s"] = wait_replica_in_readers(lab, replica, f"{replica} back in every ProxySQL's readers", 120)
    report("drill_stop_replica", figures)
    # At most the request in flight when the replica's host vanishes: seen 0 of
    # 182-194 on the lab (Debian 13), 1 of 167-178 on the VM-like lab (Debian 12),
    # in 20 s loops.
    assert figures["sent"] > 80 and figures["failed"] <= 1, figures


@pytest.mark.only_on("vm", "the same drain, copy and UP steps, one web host at a time, run on Debian 13 in the "
                           "maintenance-window drill's webservers.yml; here it runs inside the quiet check's five "
                           "minutes, which this lab's shorter list of tests before it otherwise waits out")
@pytest.mark.routine
def test_a_rolling_update_costs_no_request(lab, client, site_url):
    url, _ = site_url
    with request_loop(lab, client, url) as figures:
        seconds, out = lab.playbook("rolling_update.yml")
    figures["playbook_s"] = seconds
    report("drill_rolling_update", figures)
    # Each web host was drained on each load balancer, one host at a time.
    assert out.count("TASK [Drain this web host on every load balancer]") == len(lab.hosts("webservers")), out[-2000:]
    assert figures["sent"] > 100
    assert figures["failed"] == 0, figures


def server_starts(lab):
    """When each database's MariaDB process started, by host."""
    return {db: int(server_started(lab, db)) for db in lab.hosts("databases")}


def app_accounts(lab):
    """The WordPress database accounts each database and each ProxySQL knows, by host."""
    accounts = {db: db_accounts(lab, db, "wordpress") for db in lab.hosts("databases")}
    accounts.update({web: {row[0] for row in lab.proxysql_admin(web, "SELECT username FROM mysql_users")}
                     for web in lab.hosts("proxysql")})
    return accounts


def db_accounts(lab, db, prefix):
    """The accounts of a database whose names start with prefix."""
    return set(sql(lab, db, f"SELECT DISTINCT user FROM mysql.user WHERE user LIKE '{prefix}%'").split())


def service_accounts(lab, since_us):
    """Who replicates and who monitors, as each consumer says, and every
    'Access denied' their logs hold since since_us (µs since the epoch)."""
    found = {"accounts": {}, "replicating_with": {}, "monitoring_with": {}, "guard_with": {}, "denied": {}}
    for db in lab.hosts("databases"):
        found["accounts"][db] = {kind: sorted(db_accounts(lab, db, kind)) for kind in ("replication", "proxysql_monitor")}
        status = lab.sh(db, "mariadb -e 'SHOW SLAVE STATUS\\G'").stdout
        fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in status.splitlines()[1:])}
        if fields:
            found["replicating_with"][db] = (fields["Master_User"], fields["Slave_IO_Running"], fields["Slave_SQL_Running"])
    for web in lab.hosts("proxysql"):
        found["monitoring_with"][web] = lab.proxysql_admin(
            web, "SELECT variable_value FROM runtime_global_variables WHERE variable_name = \"mysql-monitor_username\"")[0][0]
        found["guard_with"][web] = json.loads(lab.sh(web, "cat /etc/proxysql-replica-guard.json").stdout)["monitor_user"]
        denied = 0
        for log in ("mysql_server_connect_log", "mysql_server_ping_log"):
            column = "connect_error" if log.endswith("connect_log") else "ping_error"
            denied += int(lab.proxysql_admin(web, f"SELECT COUNT(*) FROM monitor.{log} WHERE time_start_us > {since_us} "
                                                  f"AND {column} LIKE \"%Access denied%\"")[0][0])
        journal = lab.sh(web, f"journalctl -u proxysql-replica-guard --since @{since_us // 1_000_000} -o cat", check=False).stdout
        found["denied"][web] = denied + journal.count("Access denied")
    return found


PROXYSQL_LOG = "/var/lib/proxysql/proxysql.log"


def proxysql_log_ends(lab):
    """How many lines each ProxySQL's log holds, by host: where a drill's part begins."""
    return {web: int(lab.sh(web, f"wc -l < {PROXYSQL_LOG}").stdout) for web in lab.hosts("proxysql")}


def reads_that_met_a_stopped_server(lab, since):
    """The lines ProxySQL logged, since `since` (proxysql_log_ends), where a
    read met a database going down: a pooled connection found broken, or a
    refused connect, in the reader hostgroup (what its sessions log; its
    monitor's own checks are left out)."""
    reader = lab.hostvars[lab.hosts("proxysql")[0]].get("proxysql_reader_hostgroup", 20)
    met = re.compile(rf"(MySQL_Session\.cpp.*broken connection.*\({reader},"
                     rf"|mysql_connection\.cpp.*Failed to mysql_real_connect\(\) on {reader}:)")
    return {web: [line[:160] for line in lab.sh(web, f"tail -n +{start + 1} {PROXYSQL_LOG}").stdout.splitlines()
                  if met.search(line)] for web, start in since.items()}


def code_sync_steps(output):
    """The wordpress role's code sync steps a playbook's output shows, in
    order: (first word of the task, web host, balancer or None)."""
    steps, task = [], None
    for line in output.splitlines():
        header = re.match(r"TASK \[wordpress : sync \| (\w+)", line)
        if line.startswith("TASK ["):
            task = header.group(1) if header else None
        elif task in ("Drain", "Copy", "Put"):
            # changed: [web1 -> lb1] or, with ansible_host set, [web1 -> lb1(10.214.0.11)]
            done = re.match(r"(?:ok|changed): \[([^\]\s]+)(?: -> ([^\]\s(]+)[^\]]*)?\]", line)
            if done:
                steps.append((task, done.group(1), done.group(2)))
    return steps


@pytest.mark.routine
def test_a_changed_setting_and_a_rotated_password_cost_no_request(lab, client, site_url):
    """A maintenance window, while visitors and a logged-in author browse:
    1. a setting MariaDB reads at start only, changed: databases.yml restarts
       the replica, then the primary once it handed its writes to the replica
       (the two swap roles);
    2. new passwords for the WordPress, replication, monitor and health
       accounts, and the next routine databases.yml (the setting back: both
       restart again and swap back): the new WordPress account exists beside
       the old one, which the site still uses; the replica replicates, every
       ProxySQL and replica guard monitors with the new accounts, the old
       replication and monitor accounts are gone, and no log of theirs
       holds an "Access denied";
    3. a changed file in every web host's code tree (an older time on
       wp-login.php, as a new release would bring), and webservers.yml: every
       web host on the new account, the old one gone from every ProxySQL and
       every database; the code copied one web host at a time, each drained
       on every balancer and back UP before the next starts.
    None of their requests fails."""
    url, _ = site_url
    # Two hand-overs: the drills after this one find the inventory's primary.
    assert lab.primary() == databases(lab)[0], "the drill starts from the inventory's primary"
    old = lab.wordpress_db_user()
    old_service = (lab.account("replication", "mariadb_replication_password"),
                   lab.account("proxysql_monitor", "mariadb_monitor_password"))
    primaries, starts, seconds = [lab.primary()], [server_starts(lab)], {}
    log_ends = proxysql_log_ends(lab)
    with visitors_and_an_author(lab, client, url) as (visitors, author):
        seconds["setting"], _ = lab.playbook("databases.yml", "-e", "mariadb_binlog_expire_seconds=604801")
        primaries.append(lab.primary())
        starts.append(server_starts(lab))
        for name in ("wordpress_db_password", "mariadb_replication_password", "mariadb_monitor_password", "mariadb_health_password"):
            lab.set_secret(name, secrets.token_hex(12))
        rotated_us = time.time_ns() // 1000
        seconds["rotation_databases"], _ = lab.playbook("databases.yml")
        primaries.append(lab.primary())
        starts.append(server_starts(lab))
        stopped_reads = reads_that_met_a_stopped_server(lab, log_ends)
        between = app_accounts(lab)
        service = service_accounts(lab, rotated_us)
        webs = lab.hosts("webservers")
        for web in webs:
            lab.sh(web, f"touch -d 2001-01-01 {lab.site_root(web)}/wp-login.php")
        seconds["rotation_webservers"], output = lab.playbook("webservers.yml")
    sync = code_sync_steps(output)
    after = app_accounts(lab)
    new = lab.wordpress_db_user()
    replication, monitor = lab.account("replication", "mariadb_replication_password"), lab.account("proxysql_monitor", "mariadb_monitor_password")
    health = {db: lab.sh(db, f"MYSQL_PWD={lab.secret('mariadb_health_password')} mariadb -u health -N -B -e 'SELECT 1'",
                         check=False).stdout.strip() for db in lab.hosts("databases")}
    report("drill_setting_and_rotation", {
        "visitors": visitors, "author": author, "playbook_s": seconds, "starts": starts, "primaries": primaries,
        "accounts_between": {h: sorted(a) for h, a in between.items()}, "accounts_after": {h: sorted(a) for h, a in after.items()},
        "service_accounts": service, "health_login": health, "code_sync": sync, "reads_on_a_stopped_server": stopped_reads})
    for run in (1, 2):
        before, now, primary = starts[run - 1], starts[run], primaries[run - 1]
        replica = next(db for db in before if db != primary)
        assert all(now[db] != before[db] for db in before), f"not every database restarted: {starts}"
        # The replica first, the primary after it (systemd's start times, in µs),
        # once it handed its writes over.
        assert now[replica] < now[primary], starts
        assert primaries[run] == replica, primaries
    # Each server left every ProxySQL's reads before it stopped (the mariadb
    # role's tasks/drain.yml): no read met one going down. Without the drain,
    # every restart here left such lines, each read retried by ProxySQL (CI
    # 2026-12-07 saw the author's page time out after 2 s in this drill).
    assert not any(stopped_reads.values()), stopped_reads
    assert new != old and replication != old_service[0] and monitor != old_service[1]
    assert all(accounts == {old, new} for accounts in between.values()), between
    # The replication and monitor accounts moved within databases.yml itself.
    assert all(a == {"replication": [replication], "proxysql_monitor": [monitor]} for a in service["accounts"].values()), service
    assert set(service["replicating_with"].values()) == {(replication, "Yes", "Yes")}, service
    assert len(service["replicating_with"]) == len(lab.hosts("databases")) - 1, service
    assert set(service["monitoring_with"].values()) == {monitor} and set(service["guard_with"].values()) == {monitor}, service
    assert set(service["denied"].values()) == {0}, service
    assert set(health.values()) == {"1"}, health
    # One web host at a time: drained on every balancer, copied, back UP, then the next.
    lbs = lab.hosts("loadbalancers")
    assert sync == [step for web in webs for step in [("Drain", web, lb) for lb in lbs] + [("Copy", web, None)]
                    + [("Put", web, lb) for lb in lbs]], sync
    for web in webs:
        assert "2001" not in lab.sh(web, f"date -r {lab.site_root(web)}/wp-login.php +%Y").stdout, web
    assert all(accounts == {new} for accounts in after.values()), after
    for web in lab.hosts("webservers"):
        assert f"'{new}'" in lab.sh(web, f"grep DB_USER {lab.site_root(web)}/wp-config.php").stdout
    assert visitors["sent"] > 300 and author["sent"] > 150, (visitors, author)
    assert visitors["failed"] == 0, visitors
    assert author["failed"] == 0, author


@pytest.mark.only_on("vm", "Debian 13: Molecule's databases scenario runs the same drill on the same guard "
                           "(test_a_replica_whose_sql_thread_stopped_leaves_the_readers_and_returns)")
def test_a_replica_whose_replication_stopped_leaves_the_readers_and_returns(lab):
    """STOP SLAVE SQL_THREAD: within 15 s every read through ProxySQL's split
    port sees a row written since (proxysql-replica-guard takes the replica
    out of the readers on every web host); START SLAVE: it comes back."""
    primary, replica = databases(lab)
    webs = lab.hosts("proxysql")
    # From a replica in the readers (a shunned one is out already, and the
    # guard leaves it to ProxySQL).
    wait_replica_in_readers(lab, replica, f"{replica} in every ProxySQL's readers", 60)
    sql(lab, primary, "CREATE TABLE IF NOT EXISTS wordpress.e2e_guard (id BIGINT PRIMARY KEY)")
    lab.wait_until("the table on the replica", lambda: "e2e_guard" in sql(lab, replica, "SHOW TABLES FROM wordpress"), timeout=10)
    row = time.time_ns()
    reader = (f"MYSQL_PWD={lab.secret('wordpress_db_password')} mariadb -h 127.0.0.1 -P 6033 -u {lab.wordpress_db_user()} wordpress "
              f"-N -B -e 'SELECT COUNT(*) FROM e2e_guard WHERE id = {row}'")
    figures = {}
    sql(lab, replica, "STOP SLAVE SQL_THREAD")
    try:
        stopped = time.monotonic()
        sql(lab, primary, f"INSERT INTO wordpress.e2e_guard VALUES ({row})")
        lab.wait_until("every read through ProxySQL to see the row", lambda: all(
            lab.sh(web, reader).stdout.strip() == "1" for web in webs for _ in range(5)), timeout=15, interval=0.2)
        figures["stopped_to_reads_fresh_s"] = round(time.monotonic() - stopped, 1)
        statuses = {web: lab.proxysql_readers(web).get(lab.address(replica)) for web in webs}
        figures["replica_status"] = statuses
        assert set(statuses.values()) == {"OFFLINE_SOFT"}, statuses
        assert "0" == sql(lab, replica, f"SELECT COUNT(*) FROM wordpress.e2e_guard WHERE id = {row}")
        # A full backup meanwhile comes from the primary, and says so.
        lab.sh(backup_host(lab), "wpha-backup full")
        full = backup_status(lab)["full"]
        figures["full_backup_while_no_replica_in_sync"] = full
        assert full["ok"] and full["source"] == primary and full["why"] == f"the primary {primary}: no replica is in sync", full
    finally:
        sql(lab, replica, "START SLAVE SQL_THREAD")
    figures["started_to_back_s"] = wait_replica_in_readers(lab, replica, "the replica back in the readers", 20)
    report("drill_replica_sql_thread_stopped", figures)
    assert figures["stopped_to_reads_fresh_s"] < 15, figures


def backup_host(lab):
    return lab.hosts("backups")[0]


def backup_status(lab):
    """The backup host's status file: each job's last run, result and figures."""
    return json.loads(lab.sh(backup_host(lab), "wpha-backup status").stdout)


def clear_of_scheduled_backups(lab, margin=150):
    """Wait out a scheduled full or incremental due within `margin` s: one
    that ran between a drill's own backups and its restore point would end
    the chain at that point and leave no binlog to replay (CI's run of
    44f8b8e started the drill at 07:14; the hourly incremental at :15 did
    just that). systemd may fire a timer up to a minute late (AccuracySec),
    so this waits for the timer's next trigger and for the job to end."""
    backup = backup_host(lab)
    for job in ("full", "incremental"):
        timer = f"wpha-backup@{job}.timer"
        due = int(lab.sh(backup, f"n=$(systemctl show -P NextElapseUSecRealtime {timer}); "
                         "echo $(( $(date -d \"$n\" +%s) - $(date +%s) ))").stdout)
        if due > margin:
            continue
        last = lab.sh(backup, f"systemctl show -P LastTriggerUSec {timer}").stdout

        def ran(timer=timer, job=job, last=last):
            return lab.sh(backup, f"systemctl show -P LastTriggerUSec {timer}").stdout != last and lab.sh(
                backup, f"systemctl is-active wpha-backup@{job}.service", check=False).stdout.strip() in ("inactive", "failed")
        lab.wait_until(f"the scheduled {job} backup, due in {due} s", ran, timeout=due + 300, interval=2)


def archived_ids(lab, table):
    """Ids of the rows inserted into wordpress.<table> that the backup host's binlog archive holds."""
    out = lab.sh(backup_host(lab), "for f in /srv/backups/binlogs/current/*/*.[0-9]*; do "
                 "mariadb-binlog --base64-output=decode-rows -v \"$f\"; done "
                 f"| grep -A2 '^### INSERT INTO `wordpress`.`{table}`' | sed -n 's/^###   @1=//p'", timeout=300).stdout
    return {int(x) for x in out.split()}


WRITES_TABLE = "e2e_acked_writes"
ACKED = set()  # ids the write loop saw acknowledged, checked again after every later drill


def write_loop(lab, table, rate=25, max_seconds=300):
    """Rows written through the first ProxySQL host's writer port (write_loop.py) while the with-block lasts."""
    password = lab.secret("wordpress_db_password")
    return background_loop(lab, lab.hosts("proxysql")[0], "write_loop.py",
                           lambda stop: ("127.0.0.1", 6034, lab.wordpress_db_user(), password, table, max_seconds, rate, stop), max_seconds)


def table_ids(lab, db, table):
    out = lab.sh(db, f"mariadb -N -e 'SELECT id FROM wordpress.{table}'").stdout
    return {int(x) for x in out.split()}


def sql(lab, db, query):
    return lab.sh(db, f"mariadb -N -B -e \"{query}\"").stdout.strip()


def server_started(lab, db):
    """When this MariaDB server process started (systemd's record): it changes with any restart."""
    return lab.sh(db, "systemctl show -p ExecMainStartTimestampMonotonic --value mariadb").stdout.strip()


def replicates_from(lab, db):
    out = lab.sh(db, "mariadb -e 'SHOW SLAVE STATUS\\G'").stdout
    fields = dict((k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line))
    return fields.get("Master_Host"), fields.get("Slave_IO_Running"), fields.get("Slave_SQL_Running")


def reader_weights(lab, web):
    """{database: (weight, max_replication_lag)} of the reader hostgroup in ProxySQL's runtime on one host
    (the role's defaults: 1000 and 10 s for a replica, 1 and none for the primary)."""
    name = {lab.address(db): db for db in lab.hosts("databases")}
    reader = lab.hostvars[web].get("proxysql_reader_hostgroup", 20)
    return {name[host]: (int(weight), int(lag)) for host, weight, lag in lab.proxysql_admin(
        web, f"SELECT hostname, weight, max_replication_lag FROM runtime_mysql_servers WHERE hostgroup_id = {reader}")}


def recap_changes(lab, out, groups=("databases", "proxysql")):
    hosts = {h for g in groups for h in lab.hosts(g)}
    return [line for line in out.splitlines() if line.split(" ", 1)[0] in hosts and " changed=" in line]


def databases(lab):
    role = {h: lab.hostvars[h].get("mariadb_replication_role", "primary") for h in lab.hosts("databases")}
    return next(h for h in role if role[h] == "primary"), next(h for h in role if role[h] == "replica")


def rows(lab, db, title):
    out = lab.sh(db, f"mariadb -N -e \"SELECT COUNT(*) FROM wordpress.wp_posts WHERE post_title = '{title}'\"", check=False)
    return int(out.stdout.strip() or -1) if out.returncode == 0 else -1


def read_only_refusal(lab, client, url, title):
    """Try to publish; return the refusal (the read-only page), timed."""
    start = time.monotonic()
    refused = lab.wp_publish(client, url, title)
    refused["seconds"] = round(time.monotonic() - start, 2)
    assert refused.get("status") == 503, refused
    assert "temporarily read-only" in refused.get("page", ""), refused
    # At once: the writer check gives up after wordpress_db_primary_timeout
    # (0.7 s) and nothing runs the request again (HAProxy, Varnish). Timed in
    # the client, from the request to its answer ("seconds" adds starting
    # the client's script).
    assert refused["request_s"] < 1.0, refused
    return refused


def test_without_the_primary_visitors_read_and_writes_get_the_read_only_page(lab, client, site_url):
    """Freeze the primary 20 s, then stop it: anonymous pages keep coming from
    the replica through ProxySQL, logins and posts get the read-only page,
    db_promote.yml restores writes and ProxySQL follows on its own."""
    url, _ = site_url
    primary, replica = databases(lab)
    stamp = int(time.time())
    # The drill starts from a healthy stack, which takes a write at once. (CI
    # once saw this publish refused right after the replica drill: the
    # replica guard's reload had emptied the writer hostgroup for a second.
    # Fixed in the guard; the databases scenario checks it.) A refusal comes
    # with ProxySQL's own view of the servers.
    before = lab.wp_publish(client, url, f"before losing the primary {stamp}")
    assert before.get("status") == "publish", (before, lab.proxysql_state(lab.hosts("proxysql")[0]))
    figures = {}
    lab.wait_until("the post on the replica", lambda: rows(lab, replica, f"before losing the primary {stamp}") == 1, timeout=10)
    # WordPress's transients (its cache in the options table) are all expired
    # when the freeze starts, the worst moment: a page view that stored one
    # again would wait for the frozen primary (Debian 12's WordPress 6.1 does
    # on every page view once a minute); it must not.
    lab.sh(primary, "mariadb -e \"DELETE FROM wordpress.wp_options WHERE option_name LIKE '\\\\_transient\\\\_%'\"")

    # 1. The primary freezes for 20 s (docker pause): nothing answers, nothing closes.
    with request_loop(lab, client, url, interval=0.1) as frozen:
        docker("pause", primary, check=True)
        try:
            threading.Event().wait(5)
            figures["freeze_write_refused"] = read_only_refusal(lab, client, url, f"while the primary is frozen {stamp}")
            threading.Event().wait(max(0.0, 20 - 5 - figures["freeze_write_refused"]["seconds"]))
        finally:
            docker("unpause", primary, check=True)
        threading.Event().wait(3)
    figures["freeze_loop"] = {k: v for k, v in frozen.items() if k != "failures"}
    # Writes work again once it thaws: it was never demoted.
    lab.wait_until("writes after the freeze", lambda: lab.wp_publish(client, url, f"after the freeze {stamp}").get("status") == "publish",
                   timeout=30, interval=1)

    # 2. The primary dies (docker kill) under a write loop through ProxySQL.
    with request_loop(lab, client, url, interval=0.2) as lost, write_loop(lab, WRITES_TABLE) as writes:
        threading.Event().wait(3)
        lost_at = time.monotonic()
        docker("kill", primary, check=True)
        figures["stopped_after_s"] = round(time.monotonic() - lost_at, 1)
        figures["stop_write_refused"] = read_only_refusal(lab, client, url, f"while the primary is lost {stamp}")

        # Not without the operator's word that the primary is gone: the
        # playbook refuses, names it, and says how to go on. (The lab only:
        # on the VM-like lab each run's assessment waits out the SSH
        # connection timeout on the lost host, 25 s under Mitogen; there the
        # promotion below, the same assessment, spends it once.)
        if lab.name == "lab":
            _, out = lab.playbook("db_promote.yml", "-e", f"db_promote_target={replica}", fails=True)
            assert f"Refusing to promote: {primary} does not answer" in out, out[-2000:]
            assert "db_promote_primary_lost=true" in out
            assert lab.sh(replica, "mariadb -N -e 'SELECT @@read_only'").stdout.strip() == "1"

        # No target named: the replica that received the most is chosen.
        figures["db_promote_s"], out = lab.playbook("db_promote.yml", "-e", "db_promote_primary_lost=true")
        assert f"Promoting {replica} (received the most)" in " ".join(out.split()), out[-3000:]
        after = {}

        def writes_work():
            after.update(lab.wp_publish(client, url, f"after the promotion {stamp}"))
            return after.get("status") == "publish"
        lab.wait_until("writes through the site", writes_work, timeout=60, interval=1)
        figures["writes_restored_after_s"] = round(time.monotonic() - lost_at, 1)
        threading.Event().wait(3)
    figures["stop_loop"] = {k: v for k, v in lost.items() if k != "failures"}
    figures["write_loop"] = {k: v for k, v in writes.items() if k != "acked"}
    figures["write_loop"]["acked"] = len(writes["acked"])
    # Semi-synchronous replication: every write acknowledged before the kill is on the promoted replica.
    stored = table_ids(lab, replica, WRITES_TABLE)
    figures["write_loop"]["acked_missing_on_new_primary"] = sorted(set(writes["acked"]) - stored)
    report("drill_stop_primary", figures)
    ACKED.update(writes["acked"])
    assert len(writes["acked"]) >= 20 * 5 and writes["failed"] > 0, figures["write_loop"]
    # At least 20 acknowledged writes a second up to the kill.
    killed = writes["first_failure"]
    figures["write_loop"]["acked_per_s_before_kill"] = round(
        sum(1 for i in writes["acked"] if i < killed["id"]) / max(killed["t"], 0.001), 1)
    report("drill_stop_primary", figures)
    assert figures["write_loop"]["acked_per_s_before_kill"] >= 20, figures["write_loop"]
    assert not figures["write_loop"]["acked_missing_on_new_primary"], figures["write_loop"]

    # The binlog archive on the backup host followed the promotion by itself
    # and holds every acknowledged write: RPO 0 (the goal is 60 s).
    archive = {}

    def archive_complete():
        archive["source"] = backup_status(lab).get("archive", {}).get("source")
        archive["missing"] = sorted(set(writes["acked"]) - archived_ids(lab, WRITES_TABLE))
        return archive["source"] == replica and not archive["missing"]
    try:
        lab.wait_until("every acknowledged write in the binlog archive", archive_complete, timeout=60, interval=2)
    finally:
        figures["binlog_archive"] = {"source": archive.get("source"), "acked": len(writes["acked"]),
                                     "acked_missing": archive.get("missing", [])[:20],
                                     "complete_after_kill_s": round(time.monotonic() - lost_at, 1)}
        report("drill_stop_primary", figures)

    # Visitors were served all along: only requests in flight may fail. During
    # a freeze that includes a request one of whose queries took the frozen
    # primary's small read share (weight 1 of 1001) before the monitor's pings
    # shunned it (~3 s): seen 0 and 1 of 230-250 requests.
    assert frozen["sent"] > 150 and frozen["failed"] <= 2, frozen
    assert lost["sent"] > 50 and lost["failed"] <= 1, lost
    # ProxySQL followed: the new primary keeps the primary's small read share,
    # the lost one takes no reads until the converge makes it a replica.
    for web in lab.hosts("proxysql"):
        assert reader_weights(lab, web) == {primary: (0, 10), replica: (1, 0)}, web
    # No acknowledged post is lost; the refused ones were never written.
    for title in (f"before losing the primary {stamp}", f"after the freeze {stamp}", f"after the promotion {stamp}"):
        assert rows(lab, replica, title) == 1, title
    assert f"before losing the primary {stamp}" in lab.sh(client, f"curl -sS --fail '{before['link']}'").stdout
    for title in (f"while the primary is frozen {stamp}", f"while the primary is lost {stamp}"):
        assert rows(lab, replica, title) == 0, title


def test_the_lost_primary_rejoins_with_the_inventory_unchanged(lab, client, site_url):
    """After the failover above, the routine converge with the inventory as it
    was (it still names the old primary): nothing acknowledged is lost, the old
    primary rejoins as a replica by GTID, a second converge changes nothing."""
    url, _ = site_url
    primary, replica = databases(lab)
    since = time.time()
    docker("start", primary, check=True)
    lab.wait_until(f"{primary} to boot", lambda: lab.sh(primary, "systemctl is-system-running", check=False).stdout.strip()
                   in ("running", "degraded"), timeout=120)
    # Fenced: another server is writable, so mariadb-reopen keeps it read-only and says why.
    lab.wait_until("mariadb-reopen to decide", lambda: f"Stays read-only: {replica} is writable" in reopen_journal(
        lab, primary, since), timeout=60)
    assert sql(lab, primary, "SELECT @@read_only") == "1"
    figures = {}
    figures["rejoin_s"], out = lab.playbook("databases.yml")
    assert f"{replica} is the live primary" in " ".join(out.split()), out[-3000:]
    assert replicates_from(lab, primary) == (lab.address(replica), "Yes", "Yes")
    for web in lab.hosts("proxysql"):
        assert reader_weights(lab, web) == {primary: (1000, 10), replica: (1, 0)}, web
    figures["second_converge_s"], out = lab.playbook("databases.yml")
    recap = recap_changes(lab, out)
    assert recap and all(" changed=0 " in line for line in recap), recap
    stamp = int(time.time())
    written = lab.wp_publish(client, url, f"written on the promoted replica {stamp}")
    assert written.get("status") == "publish", written
    lab.wait_until(f"the post on {primary}", lambda: rows(lab, primary, f"written on the promoted replica {stamp}") == 1, timeout=10)
    for db in (primary, replica):
        missing = ACKED - table_ids(lab, db, WRITES_TABLE)
        assert not missing, f"{db} lacks acknowledged writes {sorted(missing)[:20]}"
    figures["acked_rows_checked"] = len(ACKED)
    report("drill_primary_rejoins", figures)


def test_an_old_primary_that_wrote_alone_is_never_overwritten(lab, tmp_path):
    """The old primary, cut off, takes a write of its own: the converge refuses
    before any change, naming it; with the operator's flag the transaction is
    saved on the control node first and the server rejoins."""
    primary, replica = databases(lab)  # the inventory's names: replica is the live primary here
    sql(lab, primary, "STOP SLAVE; RESET SLAVE ALL")
    sql(lab, primary, f"REPLACE INTO wordpress.{WRITES_TABLE} (id, at) VALUES (987654321, 0)")
    own = sql(lab, primary, "SELECT @@gtid_binlog_pos")
    _, out = lab.playbook("databases.yml", fails=True)
    flat = " ".join(out.split())
    assert f"{primary} holds {own}" in flat and "mariadb_replication_discard_divergent=true" in flat, out[-3000:]
    recap = recap_changes(lab, out)
    assert recap and all(" changed=0 " in line for line in recap), recap
    assert replicates_from(lab, primary)[0] is None and 987654321 in table_ids(lab, primary, WRITES_TABLE)

    saved = tmp_path / "divergent"
    _, out = lab.playbook("databases.yml", "-e", "mariadb_replication_discard_divergent=true", "-e", f"mariadb_divergent_dir={saved}")
    files = list(saved.glob(f"{primary}-*.sql"))
    assert len(files) == 1 and "987654321" in files[0].read_text(), (files, out[-3000:])
    assert str(files[0]) in " ".join(out.split())
    assert replicates_from(lab, primary) == (lab.address(replica), "Yes", "Yes")
    assert 987654321 not in table_ids(lab, primary, WRITES_TABLE)
    assert not ACKED - table_ids(lab, primary, WRITES_TABLE)

    # A planned promotion back to the inventory's primary: ProxySQL's readers
    # take the new roles' weights; the routine converge then changes nothing,
    # on the databases or on ProxySQL (before, it moved the weights).
    lab.playbook("db_promote.yml", "-e", f"db_promote_target={primary}")
    for web in lab.hosts("proxysql"):
        assert reader_weights(lab, web) == {primary: (1, 0), replica: (1000, 10)}, web
    _, out = lab.playbook("databases.yml")
    recap = recap_changes(lab, out)
    assert recap and all(" changed=0 " in line for line in recap), recap
    assert replicates_from(lab, replica) == (lab.address(primary), "Yes", "Yes")


def reopen_journal(lab, db, since):
    """What mariadb-reopen logged on db since the epoch second `since` (a container's boots share the host's boot id)."""
    return lab.sh(db, f"journalctl -u mariadb-reopen --no-pager --since @{int(since)}", check=False).stdout


def insert_through_proxysql(lab, row_id):
    web = lab.hosts("proxysql")[0]
    return lab.sh(web, f"MYSQL_PWD={lab.secret('wordpress_db_password')} mariadb -h 127.0.0.1 -P 6034 -u {lab.wordpress_db_user()} wordpress "
                  f"-e 'INSERT INTO {WRITES_TABLE} (id, at) VALUES ({row_id}, 0)'", check=False, timeout=30).returncode == 0


def test_a_restarted_primary_takes_its_writes_back_by_itself(lab):
    """docker restart of the primary, no failover: writes come back without a
    playbook. With another database writable, it stays read-only."""
    primary, replica = databases(lab)
    figures = {}
    start = time.monotonic()
    docker("restart", "-t", "10", primary, check=True)
    row = 900000000 + time.time_ns() % 10**8  # unique: the table outlives the lab's runs
    lab.wait_until("a write through ProxySQL", lambda: insert_through_proxysql(lab, row), timeout=90, interval=0.5)
    figures["restart_to_writes_s"] = round(time.monotonic() - start, 1)
    assert figures["restart_to_writes_s"] < 30, figures

    # Someone made the replica writable meanwhile: the restarted primary stays fenced.
    sql(lab, replica, "SET GLOBAL read_only = OFF")
    try:
        since = time.time()
        docker("restart", "-t", "10", primary, check=True)
        lab.wait_until("mariadb-reopen to decide", lambda: f"Stays read-only: {replica} is writable" in reopen_journal(
            lab, primary, since), timeout=90)
        assert sql(lab, primary, "SELECT @@read_only") == "1"
    finally:
        sql(lab, replica, "SET GLOBAL read_only = ON")
    lab.sh(primary, "systemctl restart mariadb-reopen")
    lab.wait_until(f"{primary} writable", lambda: sql(lab, primary, "SELECT @@read_only") == "0", timeout=30)
    report("drill_restart_primary", figures)

    # The next routine converge changes nothing and every acknowledged write is everywhere.
    _, out = lab.playbook("databases.yml")
    recap = recap_changes(lab, out)
    assert recap and all(" changed=0 " in line for line in recap), recap
    for db in (primary, replica):
        assert not (ACKED | {row}) - table_ids(lab, db, WRITES_TABLE), db


@pytest.mark.only_on("lab", "db_promote.yml's own checks, made before any change: the same tasks and queries on "
                            "Debian 12, whose promotion the failover drill runs")
def test_db_promote_refuses_bad_input_before_any_change(lab):
    primary, replica = databases(lab)
    web = lab.hosts("webservers")[0]
    _, out = lab.playbook("db_promote.yml", "-e", f"db_promote_target={web}", fails=True)
    assert f"Refusing to promote {web}: name one of {', '.join(lab.hosts('databases'))}" in " ".join(out.split()), out[-2000:]
    sql(lab, replica, "SET GLOBAL read_only = OFF")
    try:
        _, out = lab.playbook("db_promote.yml", "-e", f"db_promote_target={replica}", fails=True)
        flat = " ".join(out.split())
        assert "Refusing to promote:" in flat and "are both writable" in flat, out[-2000:]
        assert all(name in flat.split("Refusing to promote:", 1)[1][:200] for name in (primary, replica)), flat[-2000:]
    finally:
        sql(lab, replica, "SET GLOBAL read_only = ON")
    # Nothing changed: the primary writable, the replica replicating from it.
    assert sql(lab, primary, "SELECT @@read_only") == "0"
    assert replicates_from(lab, replica) == (lab.address(primary), "Yes", "Yes")
    # While both were writable, ProxySQL's fencing (one writer at most) left
    # it no writer, and sessions that waited then time out for a few seconds
    # more (CI saw the next test's first publish refused). The drill ends
    # when every ProxySQL has the primary alone as its writer again.
    for web in lab.hosts("proxysql"):
        lab.wait_until(f"ProxySQL on {web} writes to {primary} alone",
                       lambda: lab.proxysql_writers(web) == {lab.address(primary): "ONLINE"}, timeout=30)
    # The sessions that waited give up within ProxySQL's connect timeout.
    timeout_ms = int(lab.hostvars[lab.hosts("proxysql")[0]].get("proxysql_connect_timeout_max_ms", 3000))
    threading.Event().wait(timeout_ms / 1000 + 1)


def test_a_bad_delete_is_undone_by_a_point_in_time_restore(lab, client, site_url):
    """Publish N posts and an upload, note T, publish M more and another
    upload, then a bad DELETE of every post: restore.yml to T brings back
    exactly the N posts and the first upload on every server, the site serves
    them, and the next routine converge changes nothing."""
    url, _ = site_url
    primary, replica = databases(lab)
    backup = backup_host(lab)
    webs = lab.hosts("webservers")
    stamp = int(time.time())
    uploads = lab.site_root(webs[0]) + "/wp-content/uploads"
    figures = {}

    def posts(db, kind):
        return int(sql(lab, db, f"SELECT COUNT(*) FROM wordpress.wp_posts WHERE post_title LIKE 'restore {stamp} {kind} %'"))

    def upload(name):
        lab.sh(webs[0], f"echo {name} > {uploads}/{name} && chown www-data: {uploads}/{name}")
        lab.wait_until(f"{name} on every web host", lambda: all(
            lab.sh(w, f"test -f {uploads}/{name}", check=False).returncode == 0 for w in webs), timeout=30)
        lab.sh(backup, "wpha-backup uploads")

    # The restore uses a full, an incremental on it and the binlog archive
    # after them (the third post is only there).
    clear_of_scheduled_backups(lab)
    before = [lab.wp_publish(client, url, f"restore {stamp} before {i}") for i in range(2)]
    lab.sh(backup, "wpha-backup full && wpha-backup incremental")
    taken = backup_status(lab)
    assert taken["incremental"]["kind"] == "incremental", taken["incremental"]
    before.append(lab.wp_publish(client, url, f"restore {stamp} before 2"))
    assert all(p.get("status") == "publish" for p in before), before
    upload(f"restore-{stamp}-before.txt")
    lab.wait_until("the posts on the replica", lambda: posts(replica, "before") == 3, timeout=10)
    threading.Event().wait(1.5)
    point = lab.sh(backup, "date '+%F %T'").stdout.strip()
    threading.Event().wait(1.5)
    after = [lab.wp_publish(client, url, f"restore {stamp} after {i}") for i in range(2)]
    assert all(p.get("status") == "publish" for p in after), after
    upload(f"restore-{stamp}-after.txt")
    # The mistake: it replicates at once.
    sql(lab, primary, "DELETE FROM wordpress.wp_posts WHERE post_type = 'post'")
    lab.wait_until("the DELETE on the replica", lambda: posts(replica, "before") == 0, timeout=10)

    # Bad points stop before any change, naming the range available: the
    # playbook's first step (restore-plan) refuses them.
    # (The site keeps writing meanwhile, WordPress's due events for one, so
    # "nothing changed" is: no server restarted, the posts table as it was.)
    untouched = {db: (server_started(lab, db), sql(lab, db, "CHECKSUM TABLE wordpress.wp_posts")) for db in (primary, replica)}
    _, out = lab.playbook("restore.yml", "-e", "restore_to='2099-01-01 00:00:00'", fails=True)
    flat = " ".join(out.split())
    assert "Nothing changed: restore_to 2099-01-01 00:00:00 is in the future; available: " in flat, flat[-1500:]
    for bad, says in (("yesterday", "is neither 'latest'"), ("2001-01-01 00:00:00", "is before the oldest full backup; available: ")):
        refused = lab.sh(backup, f"wpha-backup restore-plan '{bad}'", check=False)
        assert refused.returncode == 3 and says in json.loads(refused.stdout)["refused"], refused.stdout
    assert {db: (server_started(lab, db), sql(lab, db, "CHECKSUM TABLE wordpress.wp_posts")) for db in (primary, replica)} == untouched

    # The plan starts from the drill's full and takes its incremental, and
    # nothing else (no scheduled backup was due).
    plan = json.loads(lab.sh(backup, f"wpha-backup restore-plan '{point}'").stdout)
    assert plan["snapshot"] == taken["full"]["snapshot"], (plan, taken["full"])
    assert plan["incrementals"] == [taken["incremental"]["snapshot"]], (plan, taken["incremental"])
    figures["restore_s"], out = lab.playbook("restore.yml", "-e", f"restore_to='{point}'")
    flat = " ".join(out.split())
    figures["said"] = flat[flat.find("Restored "):flat.find(" PLAY RECAP")]
    report("drill_point_in_time_restore", figures)
    assert f"Restored {primary} to {point}" in flat, flat[-3000:]
    assert f"Full backup {plan['snapshot']} (from {taken['full']['source']}) and {len(plan['incrementals'])} incremental(s)" \
        in flat, (plan, flat[-3000:])
    assert "binlogs replayed none" not in flat, flat[-3000:]
    for db in (primary, replica):
        lab.wait_until(f"the restore on {db}", lambda: posts(db, "before") == 3, timeout=30)
        assert posts(db, "after") == 0, db
    assert replicates_from(lab, replica) == (lab.address(primary), "Yes", "Yes")
    # The site serves them again, through the VIP; the later ones are gone.
    for post in before:
        assert f"restore {stamp} before" in lab.sh(client, f"curl -sS --fail '{post['link']}'").stdout
    for post in after:
        assert lab.sh(client, f"curl -s -o /dev/null -w '%{{http_code}}' '{post['link']}'").stdout == "404"
    for web in webs:
        assert lab.sh(web, f"cat {uploads}/restore-{stamp}-before.txt").stdout.strip() == f"restore-{stamp}-before.txt"
        assert lab.sh(web, f"test -e {uploads}/restore-{stamp}-after.txt", check=False).returncode != 0
    assert lab.sh(client, f"curl -sS --fail {url}wp-content/uploads/restore-{stamp}-before.txt").stdout.strip()
    # What the uploads held before is kept aside on each web host, outside
    # the site's tree: the wordpress role's next converge would delete it
    # there (it did, before), and Apache would serve it.
    for web in webs:
        assert lab.sh(web, f"cat /var/lib/wpha-backup-source/uploads.before-restore/restore-{stamp}-after.txt").stdout.strip() \
            == f"restore-{stamp}-after.txt"
        assert lab.sh(web, f"ls {lab.site_root(web)}/wp-content").stdout.split().count("uploads.before-restore") == 0

    # Writes work, the backups go on from the restored data (a new timeline
    # with its own full), and the next routine converge changes nothing.
    assert lab.wp_publish(client, url, f"restore {stamp} next").get("status") == "publish"
    lab.sh(backup, "wpha-backup verify")
    status = backup_status(lab)
    figures["backups_after"] = {job: status[job] for job in ("full", "verify")}
    report("drill_point_in_time_restore", figures)
    assert status["full"]["ok"] and status["verify"]["ok"], status
    _, out = lab.playbook("databases.yml")
    recap = recap_changes(lab, out)
    assert recap and all(" changed=0 " in line for line in recap), recap
    # Every write acknowledged before the restore point survives it; later ones
    # are gone with the point (ACKED holds only earlier drills' rows).
    for db in (primary, replica):
        assert not ACKED or not ACKED - table_ids(lab, db, WRITES_TABLE), db
