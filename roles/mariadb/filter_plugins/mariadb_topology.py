"""Filters of the mariadb role: the live topology of the databases.

    mariadb_gtids_beyond(state, reference)   GTIDs of a gtid_binlog_state that reference lacks
    mariadb_live_topology(states, inventory_primary, replication_user)
                                             the live primary and how each server joins it

The GTID helpers live in files/mariadb_reopen.py, the program that reopens a
restarted primary on the database hosts, so both judge divergence alike.
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "mariadb_reopen", Path(__file__).resolve().parent.parent / "files" / "mariadb_reopen.py")
_reopen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_reopen)
gtids_beyond = _reopen.gtids_beyond


def live_topology(states, inventory_primary, replication_user=None):
    """Derive the live primary from each database's live state.

    states: {host: {"answers": bool, "address": str, "read_only": bool,
                    "is_replica": bool, "master_host": str, "master_user": str,
                    "threads_run": bool, "binlog_state": str}}
    replication_user: the account replicas should log in with; a replica of
    the primary that uses another (a rotated password is a new account) is
    repointed. None: the account is not checked.
    Returns {"primary", "how" (writable | replicated | inventory), "writable",
    "join": {host: none | repoint | gtid | seed | divergent}, "beyond": {host: [gtid]}}.

    - One writable server that replicates from nobody is the primary.
    - None: the one server the others replicate from (a restarted, fenced primary).
    - Still none: the inventory's primary (a cluster being built).
    Two writable servers are returned as such; the play refuses them.
    """
    up = {h: s for h, s in states.items() if s.get("answers")}
    writable = sorted(h for h, s in up.items() if not s["is_replica"] and not s["read_only"])
    by_address = {s["address"]: h for h, s in states.items()}
    sources = sorted({by_address[s["master_host"]] for s in up.values()
                      if s["is_replica"] and s.get("master_host") in by_address
                      and not up.get(by_address[s["master_host"]], {}).get("is_replica", True)})
    if len(writable) == 1:
        primary, how = writable[0], "writable"
    elif not writable and len(sources) == 1:
        primary, how = sources[0], "replicated"
    else:
        primary, how = inventory_primary, "inventory"
    ref = states.get(primary, {}).get("binlog_state", "")
    join, beyond = {}, {}
    for host, s in states.items():
        if host == primary:
            join[host] = "none"
            continue
        if not s.get("answers"):
            join[host] = "seed"  # nothing installed or running yet: a new server
            continue
        beyond[host] = gtids_beyond(s.get("binlog_state", ""), ref)
        if beyond[host]:
            join[host] = "divergent"
        elif (s["is_replica"] and s.get("master_host") == states.get(primary, {}).get("address")
              and replication_user in (None, s.get("master_user"))):
            join[host] = "none"
        elif s["is_replica"]:
            join[host] = "repoint"
        elif s.get("binlog_state"):
            join[host] = "gtid"
        else:
            join[host] = "seed"
    # Where each divergent server's own history leaves the primary's: the last
    # GTID both hold, per domain and server (mariadb-binlog --start-position).
    ref_gtids = _reopen.parse_gtids(ref)
    since = {h: ",".join(f"{d}-{s}-{ref_gtids[(d, s)]}" for d, s in sorted(_reopen.parse_gtids(",".join(gtids)))
                         if (d, s) in ref_gtids)
             for h, gtids in beyond.items() if gtids}
    return {"primary": primary, "how": how, "writable": writable, "join": join,
            "beyond": {h: g for h, g in beyond.items() if g}, "since": since}


class FilterModule:
    def filters(self):
        return {
            "mariadb_gtids_beyond": gtids_beyond,
            "mariadb_live_topology": live_topology,
        }
