"""Converge: the last converge that built the stack (bin/lab records each in
artifacts/<profile>/converges.jsonl), a converge that changes nothing (timed
here), and the floor: on fresh containers of the same image, one apt-get
install per host of exactly the packages the converge left on that host, all
hosts at once, as Ansible's forks run them.

Primary lost to writes accepted: the e2e drill that stops the primary
database, runs playbooks/db_promote.yml and publishes again, then brings the
old primary back and switches back (tests/e2e/test_drills.py; the lab ends
as it began). The short mode takes the drill's figures from the e2e stage,
and only if they were measured on the lab as it was built."""

import calendar
import json
import os
import statistics
import subprocess
import sys
import time

from harness import ROOT, containers, recap
from harness.lab import DOCKER, docker

DRILL = ["tests/e2e/test_drills.py::test_without_the_primary_visitors_read_and_writes_get_the_read_only_page",
         "tests/e2e/test_drills.py::test_the_lost_primary_rejoins_with_the_inventory_unchanged"]


def converge(bench):
    lab = bench.lab
    hosts = list(lab.hostvars) if not bench.short else [bench.client]
    runs = []
    for _ in range(1 if bench.short else 3):
        args = ["site.yml"] + (["--limit", ",".join(hosts)] if bench.short else [])
        seconds, out = lab.playbook(*args, timeout=1800)
        runs.append({"seconds": seconds, "changed": recap.changed(out)})
    built = builds(lab)
    return {
        "hosts": len(hosts),
        "no_change_s": statistics.median(r["seconds"] for r in runs),
        "no_change_runs": runs,
        "first_converge": built[-1] if built else None,
        "floor": floor(bench, hosts),
    }


def builds(lab):
    """The converges that built the lab (bin/lab's log of each converge: many changes per host)."""
    history = ROOT / "artifacts" / lab.name / "converges.jsonl"
    runs = [json.loads(line) for line in history.read_text().splitlines()] if history.exists() else []
    return [b for b in runs if b["changed"] >= 10 * max(1, b["hosts"])]


def floor(bench, hosts):
    """One apt-get install per host, all at once, of what the converge installed there."""
    names = [f"bench-floor-{i}" for i in range(len(hosts))]
    lists = {host: set(bench.sh(host, "dpkg-query -W -f '${Package}\\n'").split()) for host in hosts}
    try:
        containers.start_systemd(bench.lab, names, bench.image, bench.network())
        base = set(docker("exec", names[0], "dpkg-query", "-W", "-f", "${Package}\n").stdout.split())
        for name in names:
            docker("exec", name, "apt-get", "update", "-q", timeout=300)
        installs = []
        start = time.monotonic()
        for name, host in zip(names, hosts):
            wanted = " ".join(sorted(lists[host] - base))
            # Only what apt knows (ProxySQL comes from a package file).
            script = (f"pkgs=$(for p in {wanted}; do apt-cache show $p >/dev/null 2>&1 && echo $p; done); "
                      "DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs >/dev/null && echo $pkgs | wc -w")
            installs.append(subprocess.Popen([DOCKER, "exec", name, "bash", "-c", script], stdout=subprocess.PIPE, text=True))
        counts = [int(p.communicate(timeout=1800)[0].strip() or 0) for p in installs]
        if any(p.returncode for p in installs):
            raise SystemExit("the floor's apt-get install failed")
        return {"seconds": round(time.monotonic() - start, 1), "packages": sum(counts), "hosts": len(hosts)}
    finally:
        for name in names:
            docker("rm", "-f", name, check=False)


def promote(bench):
    """Primary lost to writes accepted, through the e2e drill (run now in the
    full mode; in the short mode, the e2e stage's figures if they are fresh)."""
    lab = bench.lab
    figures = ROOT / "artifacts" / "e2e" / "drill_stop_primary.json"
    source = "the last e2e drill"
    if not bench.short:
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *DRILL],
                       cwd=ROOT, check=True, env={**os.environ, "E2E_REQUIRED": "1"}, timeout=1800)
        source = "measured now"
    if not figures.exists():
        raise SystemExit(f"{figures} is missing: run the drill (pytest tests/e2e/test_drills.py) first")
    # The drill's figures count only if they were measured on this lab as
    # it stands: after the converge that built it.
    built = builds(lab)
    if built and figures.stat().st_mtime < calendar.timegm(time.strptime(built[-1]["date"], "%Y-%m-%dT%H:%M:%SZ")):
        raise SystemExit(f"no fresh figure of the promotion: {figures} predates the {lab.name} lab's build "
                         f"({built[-1]['date']}); run the drill (pytest tests/e2e/test_drills.py) or bin/bench without --short")
    drill = json.loads(figures.read_text())
    return {"source": source, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(figures.stat().st_mtime)),
            # The refused request itself (older figures: with starting the client's script).
            "refused_in_s": drill["stop_write_refused"].get("request_s", drill["stop_write_refused"]["seconds"]),
            "db_promote_s": drill["db_promote_s"],
            "writes_restored_s": drill["writes_restored_after_s"],
            "reads_failed": drill["stop_loop"]["failed"], "reads_sent": drill["stop_loop"]["sent"]}
