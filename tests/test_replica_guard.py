"""proxysql-replica-guard's decisions (roles/proxysql/files/proxysql_replica_guard.py),
without ProxySQL: which reader rows one round changes, given what it found.
The databases scenario and the lab's drills run the service itself."""

import importlib.util

from conftest import ROOT

SPEC = importlib.util.spec_from_file_location("guard", ROOT / "roles/proxysql/files/proxysql_replica_guard.py")
guard = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(guard)

DB1, DB2 = ("10.0.0.1", 3306), ("10.0.0.2", 3306)
BROKEN = "SQL thread not running (stopped)"


def rows(**statuses):
    """Reader rows as the guard reads them: db1 and db2 with a status and comment."""
    return [(*server, *statuses[name]) for name, server in (("db1", DB1), ("db2", DB2)) if name in statuses]


def test_a_replica_broken_in_two_rounds_in_a_row_leaves_the_readers():
    servers = rows(db1=("ONLINE", ""), db2=("ONLINE", ""))
    assert guard.decide(servers, {DB1: None, DB2: BROKEN}, {}, stable=True) == []
    assert guard.decide(servers, {DB1: None, DB2: BROKEN}, {DB1: None, DB2: BROKEN}, stable=True) == [
        (*DB2, "OFFLINE_SOFT", guard.MARK + BROKEN)]


def test_nothing_changes_while_the_writer_moves():
    """A switchover stops the new primary's replication for a moment: a load
    then could put back the writer the monitor was replacing (CI of 0504566:
    one write got the read-only page)."""
    servers = rows(db1=("ONLINE", ""), db2=("OFFLINE_SOFT", guard.MARK + BROKEN))
    assert guard.decide(servers, {DB1: BROKEN, DB2: None}, {DB1: BROKEN, DB2: None}, stable=False) == []


def test_a_replica_the_guard_took_out_returns_once_it_replicates():
    servers = rows(db1=("ONLINE", ""), db2=("OFFLINE_SOFT", guard.MARK + BROKEN))
    assert guard.decide(servers, {DB1: None, DB2: None}, {DB1: None, DB2: BROKEN}, stable=True) == [
        (*DB2, "ONLINE", "")]


def test_what_others_set_and_servers_that_did_not_answer_are_left_alone():
    # An operator's OFFLINE_SOFT (no mark) stays; db1 did not answer this round.
    servers = rows(db1=("ONLINE", ""), db2=("OFFLINE_SOFT", "maintenance"))
    assert guard.decide(servers, {DB2: None}, {DB1: BROKEN, DB2: None}, stable=True) == []
    # Already out: no second change.
    servers = rows(db2=("OFFLINE_SOFT", guard.MARK + BROKEN))
    assert guard.decide(servers, {DB2: BROKEN}, {DB2: BROKEN}, stable=True) == []
