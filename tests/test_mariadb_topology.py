"""The mariadb role's judgement of the live topology (filter_plugins/mariadb_topology.py)
and of divergence (files/mariadb_reopen.py, the same helpers on the database hosts),
on the states the drills produce."""

import importlib.util

import pytest

from conftest import ROOT

_spec = importlib.util.spec_from_file_location(
    "mariadb_topology", ROOT / "roles/mariadb/filter_plugins/mariadb_topology.py")
topology = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(topology)


def state(address, read_only=True, replica_of="", binlog_state="", user="replication"):
    return {"answers": True, "address": address, "read_only": read_only, "is_replica": bool(replica_of),
            "master_host": replica_of, "master_user": user if replica_of else "", "binlog_state": binlog_state}


SILENT = {"answers": False, "address": "10.0.0.9"}


def test_after_a_failover_the_writable_server_is_the_primary_and_the_old_one_rejoins_by_gtid():
    live = topology.live_topology({
        "db1": state("10.0.0.1", binlog_state="0-1-490"),
        "db2": state("10.0.0.2", read_only=False, binlog_state="0-1-490,0-2-495"),
    }, "db1")
    assert (live["primary"], live["how"], live["join"]) == ("db2", "writable", {"db1": "gtid", "db2": "none"})


def test_an_old_primary_that_wrote_after_the_failover_is_divergent_and_named_with_its_gtids():
    live = topology.live_topology({
        "db1": state("10.0.0.1", binlog_state="0-1-491"),
        "db2": state("10.0.0.2", read_only=False, binlog_state="0-1-490,0-2-495"),
    }, "db1")
    assert live["join"]["db1"] == "divergent"
    assert live["beyond"] == {"db1": ["0-1-491"]}
    assert live["since"] == {"db1": "0-1-490"}  # mariadb-binlog --start-position


def test_a_restarted_primary_that_the_replicas_follow_stays_the_primary():
    live = topology.live_topology({
        "db1": state("10.0.0.1", binlog_state="0-1-500"),
        "db2": state("10.0.0.2", replica_of="10.0.0.1", binlog_state="0-1-499"),
    }, "db2")
    assert (live["primary"], live["how"], live["join"]["db2"]) == ("db1", "replicated", "none")


def test_a_new_cluster_follows_the_inventory_and_seeds_the_replicas():
    live = topology.live_topology({"db1": dict(SILENT, address="10.0.0.1"), "db2": dict(SILENT)}, "db1")
    assert (live["primary"], live["how"], live["join"]) == ("db1", "inventory", {"db1": "none", "db2": "seed"})


def test_two_writable_servers_are_reported_not_resolved():
    live = topology.live_topology({
        "db1": state("10.0.0.1", read_only=False, binlog_state="0-1-5"),
        "db2": state("10.0.0.2", read_only=False, binlog_state="0-1-4,0-2-6"),
    }, "db1")
    assert live["writable"] == ["db1", "db2"]


def test_a_replica_of_another_server_is_repointed():
    live = topology.live_topology({
        "db1": state("10.0.0.1", read_only=False, binlog_state="0-1-10"),
        "db2": state("10.0.0.2", replica_of="10.0.0.3", binlog_state="0-1-9"),
        "db3": state("10.0.0.3", binlog_state="0-1-9"),
    }, "db1")
    assert live["join"] == {"db1": "none", "db2": "repoint", "db3": "gtid"}


def test_a_replica_on_an_earlier_replication_account_is_repointed_to_the_current_one():
    states = {
        "db1": state("10.0.0.1", read_only=False, binlog_state="0-1-10"),
        "db2": state("10.0.0.2", replica_of="10.0.0.1", binlog_state="0-1-10", user="replication_1c231429"),
    }
    assert topology.live_topology(states, "db1", "replication_adc15d43")["join"] == {"db1": "none", "db2": "repoint"}
    assert topology.live_topology(states, "db1", "replication_1c231429")["join"] == {"db1": "none", "db2": "none"}
    assert topology.live_topology(states, "db1")["join"] == {"db1": "none", "db2": "none"}


@pytest.mark.parametrize("state_, reference, beyond", [
    ("", "0-1-5", []),
    ("0-1-5", "0-1-5", []),
    ("0-1-4,0-2-3", "0-1-5,0-2-3", []),
    ("0-1-6", "0-1-5", ["0-1-6"]),
    ("0-3-9", "0-1-5", ["0-3-9"]),
    ("0-1-5,1-1-2", "0-1-5", ["1-1-2"]),
    # A re-seeded server's state is the seed's position alone: older servers' GTIDs came with it.
    ("0-1-436,0-2-664", "0-2-664", []),
    ("0-1-700,0-2-664", "0-2-664", ["0-1-700"]),
])
def test_gtids_beyond(state_, reference, beyond):
    assert topology.gtids_beyond(state_, reference) == beyond
