"""What the running lab delivers, measured (bin/bench): python -m harness.bench.

The parts, each described in its module: load.py (throughput through the
VIP, past the page cache, direct to a web host and on baseline.py's stock
Debian WordPress, and a logged-in dashboard), takeover.py (VIP takeover on a
graceful stop and a hard kill), converge.py (converge times, their floor and
the promotion drill's figures); __main__.py runs them and writes the results.

Every case runs several times, interleaved (run 1 of every case, then run 2),
so a slower moment of the machine hits every case alike; figures are medians.
Load stays bounded (a fixed duration per run, 16 connections) and only
targets the lab's own containers. Results: artifacts/bench/results.json and
results.md.
"""

CONNECTIONS = 16


class Bench:
    """What every part measures with: the lab, the mode and its hosts."""

    def __init__(self, lab, short, runs=None, duration=None):
        self.lab = lab
        self.short = short
        # Short (CI): each path once, so the bench cannot rot; figures come from the full mode.
        self.runs = runs or (1 if short else 5)
        self.duration = duration or (1 if short else 10)
        self.takeovers = 1 if short else 5
        self.client = lab.hosts("clients")[0]
        self.lbs = lab.hosts("loadbalancers")
        self.web = lab.hosts("webservers")[0]
        self.image = f"wpha/debian:{lab.profile.get('LAB_DISTRO', 'trixie')}"

    def sh(self, host, command, timeout=300):
        return self.lab.sh(host, command, timeout=timeout).stdout

    def network(self):
        """The Docker network the bench's own containers join: the balancers' first."""
        return self.lab.hostvars[self.lbs[0]].get("lab_networks", [{"name": "wpha-lab"}])[0]["name"]
