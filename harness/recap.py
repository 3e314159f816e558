"""Ansible's PLAY RECAP read back: the counts of every host of a run.

  python -m harness.recap LOG --record FILE --seconds N
      append {"date", "ended", "seconds", "changed", "hosts"} of the run to FILE
      (bin/lab); "ended" is the epoch time to the millisecond, "date" the
      same to the second, for people
  python -m harness.recap LOG --no-change
      exit 1 naming each host with changes or failures (bin/test's idempotence)
"""

import argparse
import json
import re
import sys
import time

# "web1.example.test : ok=12 changed=0 unreachable=0 failed=0 skipped=3 rescued=0 ignored=0"
LINE = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


def recap(output):
    """{host: {"ok": n, "changed": n, ...}} from a run's output (its last
    recap line per host: one run, one recap)."""
    hosts = {}
    for line in re.sub(r"\x1b\[[0-9;]*m", "", output).splitlines():
        match = LINE.match(line.strip())
        if match:
            hosts[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return hosts


def changed(output):
    """How many changes the run reports, all hosts together."""
    return sum(counts.get("changed", 0) for counts in recap(output).values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--record", help="a JSON-lines file to append the run's figures to")
    parser.add_argument("--seconds", type=int, default=0, help="how long the run took (with --record)")
    parser.add_argument("--no-change", action="store_true", help="fail when any host changed or failed")
    args = parser.parse_args(argv)
    with open(args.log, encoding="utf-8", errors="replace") as log:
        hosts = recap(log.read())
    if not hosts and args.no_change:
        sys.exit(f"{args.log}: no PLAY RECAP (the run did not finish)")
    if not hosts:
        return  # nothing ran (--list-tasks, --syntax-check): nothing to record
    if args.record:
        with open(args.record, "a", encoding="utf-8") as out:
            now = time.time()
            out.write(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "ended": round(now, 3),
                                  "seconds": args.seconds,
                                  "changed": sum(c.get("changed", 0) for c in hosts.values()), "hosts": len(hosts)}) + "\n")
    if args.no_change:
        bad = {h: c for h, c in hosts.items() if c.get("changed") or c.get("failed") or c.get("unreachable")}
        for host, counts in bad.items():
            print(f"{host}: changed={counts.get('changed', 0)} failed={counts.get('failed', 0)} "
                  f"unreachable={counts.get('unreachable', 0)}")
        sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
