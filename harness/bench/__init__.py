"""What the running lab delivers, measured (bin/bench): python -m harness.bench.

Throughput: wrk (HTTP/1.1) and h2load (HTTP/2), both from Debian, load the
front page, a post and a static file:
  - through the VIP over HTTPS, as visitors get them (the page cache answers
    anonymous pages), and again past the page cache (WordPress's no-cache
    cookie, as logged-in users and commenters go);
  - direct to one web host over HTTP, from a load balancer (the only hosts
    its firewall lets in), with the headers HAProxy sends;
  - on a baseline: one container with Debian's stock apache2,
    libapache2-mod-php and wordpress packages and a copy of the site's
    database in its own MariaDB, what a user would run without this project;
  - and a logged-in user's dashboard (wp-admin) through the VIP.
Every case runs several times, interleaved (run 1 of every case, then run 2),
so a slower moment of the machine hits every case alike; figures are medians.

VIP takeover: a probe on the client opens a new HTTPS connection to the VIP
every 20 ms while the active balancer is stopped (docker stop: keepalived
says goodbye) or killed (docker kill: it vanishes); the takeover time is from
the fault to the first answer from the other balancer. Median of several.

Converge: the last converge that built the stack (bin/lab records each in
artifacts/<profile>/converges.jsonl), a converge that changes nothing (timed
here), and the floor: on fresh containers of the same image, one apt-get
install per host of exactly the packages the converge left on that host,
all hosts at once, as Ansible's forks run them.

Primary lost to writes accepted: the e2e drill that stops the primary
database, runs playbooks/db_promote.yml and publishes again, then brings the
old primary back and switches back (tests/e2e/test_drills.py; the lab ends
as it began). The short mode reports the drill's last figures instead
(artifacts/e2e/, written by the e2e stage of bin/test minutes before).

Load stays bounded (a fixed duration per run, 16 connections) and only
targets the lab's own containers. Results: artifacts/bench/results.json and
results.md.

The parts: baseline.py (the stock Debian container), load.py (throughput),
takeover.py (VIP takeover), converge.py (converge times, their floor and the
promotion drill's figures); __main__.py runs them and writes the results.
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
