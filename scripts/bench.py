#!/usr/bin/env python3
"""What the running lab delivers, measured (bin/bench).

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
"""

import argparse
import calendar
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from lablib import ROOT, Lab, docker  # noqa: E402

BASELINE = "bench-baseline"
CONNECTIONS = 16
NO_CACHE = "Cookie: wordpress_no_cache=1"

PROBE = r'''
import http.client, json, ssl, sys, time
host, vip, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out, end = [], time.time() + seconds
while time.time() < end:
    t = time.time()
    try:
        c = http.client.HTTPSConnection(vip, 443, timeout=0.25, context=ctx)
        c.request("GET", "/", headers={"Host": host})
        r = c.getresponse()
        r.read()
        out.append([round(t, 3), r.status, r.getheader("X-Served-By", "")])
        c.close()
    except Exception as exc:
        out.append([round(t, 3), 0, type(exc).__name__])
    time.sleep(max(0.0, 0.02 - (time.time() - t)))
print(json.dumps(out))
'''


class Bench:
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

    def sh(self, host, command, timeout=300):
        return self.lab.sh(host, command, timeout=timeout).stdout

    def ensure_tools(self):
        for host, packages in ((self.client, "wrk nghttp2-client"), (self.lbs[0], "wrk"), (self.lbs[1], "wrk")):
            self.sh(host, f"command -v wrk >/dev/null && {{ [ '{packages}' = wrk ] || command -v h2load >/dev/null; }} "
                          f"|| DEBIAN_FRONTEND=noninteractive apt-get install -y -q {packages} >/dev/null")

    # The baseline: a stock Debian WordPress on one container.
    def baseline(self):
        image = f"wpha/debian:{self.lab.profile.get('LAB_DISTRO', 'trixie')}"
        network = self.network()
        if docker("inspect", BASELINE, check=False).returncode != 0:
            docker("run", "-d", "--name", BASELINE, "--hostname", BASELINE, "--network", network,
                   "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--tmpfs", "/run", "--tmpfs", "/run/lock",
                   "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", "--cgroupns", "host", image, "/lib/systemd/systemd")
            self.lab.wait_until("the baseline's systemd", lambda: docker(
                "exec", BASELINE, "systemctl", "is-system-running", check=False).stdout.strip() in ("running", "degraded"),
                timeout=60, interval=0.5)
            docker("exec", BASELINE, "bash", "-c", "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive "
                   "apt-get install -y -q apache2 libapache2-mod-php wordpress mariadb-server >/dev/null", timeout=900)
            self._configure_baseline()
        return docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", BASELINE).stdout.strip()

    def _configure_baseline(self):
        primary = next(h for h in self.lab.hosts("databases") if self.lab.hostvars[h].get("mariadb_replication_role") == "primary")
        webvars = self.lab.hostvars[self.web]
        db = webvars.get("wordpress_db_name", "wordpress")
        dump = docker("exec", primary, "mariadb-dump", "--single-transaction", db, timeout=300).stdout
        config = f"""<?php
define('DB_NAME', '{db}');
define('DB_USER', 'wordpress');
define('DB_PASSWORD', 'bench-baseline');
define('DB_HOST', 'localhost');
define('WP_HOME', 'http://{self.lab.site}');
define('WP_SITEURL', 'http://{self.lab.site}');
$table_prefix = '{webvars.get("wordpress_table_prefix", "wp_")}';
"""
        vhost = f"""<VirtualHost *:80>
    ServerName {self.lab.site}
    DocumentRoot /usr/share/wordpress
    <Directory /usr/share/wordpress>
        Options FollowSymLinks
        AllowOverride Limit Options FileInfo
        DirectoryIndex index.php
        Require all granted
        RewriteEngine On
        RewriteCond %{{REQUEST_FILENAME}} !-f
        RewriteCond %{{REQUEST_FILENAME}} !-d
        RewriteRule . /index.php [L]
    </Directory>
</VirtualHost>
"""
        docker("exec", BASELINE, "mariadb", "-e",
               f"CREATE DATABASE IF NOT EXISTS {db}; CREATE USER IF NOT EXISTS 'wordpress'@'localhost' IDENTIFIED BY "
               f"'bench-baseline'; GRANT ALL ON {db}.* TO 'wordpress'@'localhost';")
        docker("exec", "-i", BASELINE, "mariadb", db, stdin=dump, timeout=300)
        docker("exec", "-i", BASELINE, "bash", "-c", "cat > /etc/wordpress/config-default.php", stdin=config)
        docker("exec", "-i", BASELINE, "bash", "-c", "cat > /etc/apache2/sites-available/wordpress.conf", stdin=vhost)
        docker("exec", BASELINE, "bash", "-c", "a2enmod -q rewrite && a2dissite -q 000-default && a2ensite -q wordpress "
               "&& systemctl restart apache2")

    # One load run: requests/s, mean latency (ms), non-2xx/3xx answers.
    def wrk(self, host, url, headers=()):
        args = " ".join(f"-H '{h}'" for h in headers)
        out = self.sh(host, f"wrk -t 2 -c {CONNECTIONS} -d {self.duration}s --timeout 10s {args} '{url}'", timeout=120)
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        lat = re.search(r"Latency\s+([\d.]+)(us|ms|s)\b", out)
        scale = {"us": 0.001, "ms": 1, "s": 1000}[lat.group(2)]
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        # Every socket error counts: connect, read, write and timeout.
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        return {"rps": rps, "latency_ms": round(float(lat.group(1)) * scale, 2),
                "bad": int(bad.group(1)) if bad else 0, "timeouts": sum(map(int, errors.groups())) if errors else 0}

    def h2load(self, host, url, headers=()):
        args = " ".join(f"-H '{h}'" for h in headers)
        out = self.sh(host, f"h2load -c {CONNECTIONS} -m 1 -D {self.duration} {args} '{url}'", timeout=120)
        rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
        lat = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\b", out)
        scale = {"us": 0.001, "ms": 1, "s": 1000}[lat.group(2)]
        codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
        # Requests that failed, errored or timed out never got a status code.
        requests = re.search(r"requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
        return {"rps": rps, "latency_ms": round(float(lat.group(1)) * scale, 2),
                "bad": int(codes.group(3)) + int(codes.group(4)),
                "timeouts": sum(map(int, requests.groups())) if requests else 0}

    def check(self, host, url, headers=(), insecure=False):
        """The page answers 200 before it is measured (a 301 or an error page would measure the wrong thing)."""
        args = " ".join(f"-H '{h}'" for h in headers)
        status = self.sh(host, f"curl -s -o /dev/null -w '%{{http_code}}' {'-k' if insecure else ''} {args} '{url}'").strip()
        if status != "200":
            raise SystemExit(f"{url} from {host} answered {status}, not 200: not measured")

    def pages(self):
        site = f"https://{self.lab.site}"
        post = json.loads(self.sh(self.client, f"curl -sS --fail '{site}/wp-json/wp/v2/posts?per_page=1&_fields=link'"))
        post_path = "/" + post[0]["link"].split("/", 3)[3]
        static = "/wp-includes/css/dist/block-library/style.min.css"
        return {"front page": "/", "post": post_path, "static file": static}

    def login_cookie(self):
        site = f"https://{self.lab.site}"
        user = self.lab.hostvars[self.web].get("wordpress_admin_user", "admin")
        jar = "/tmp/bench-jar"
        self.sh(self.client, f"rm -f {jar}; curl -sS -o /dev/null -c {jar} '{site}/wp-login.php'")
        self.sh(self.client, f"curl -sS -o /dev/null -b {jar} -c {jar} --data-urlencode 'log={user}' --data-urlencode "
                             f"'pwd={self.lab.secret('wordpress_admin_password')}' -d testcookie=1 '{site}/wp-login.php'")
        cookies = [line.split("\t") for line in self.sh(self.client, f"cat {jar}; rm -f {jar}").splitlines()
                   if line.count("\t") == 6 and not line.startswith("# ")]
        value = "; ".join(f"{c[5]}={c[6]}" for c in cookies if c[5].startswith("wordpress"))
        if "wordpress_logged_in" not in value:
            raise SystemExit("could not log in to measure the dashboard")
        return f"Cookie: {value}"

    def throughput(self):
        baseline = self.baseline()
        pages = self.pages()
        vip = f"https://{self.lab.site}"
        web_address = self.lab.address(self.web)
        direct_headers = (f"Host: {self.lab.site}", "X-Forwarded-Proto: https")
        cases = []
        for page, path in pages.items():
            cases += [
                (page, "through the VIP, HTTP/1.1 (page cache)", "wrk", self.client, vip + path, ()),
                (page, "through the VIP, HTTP/2 (page cache)", "h2load", self.client, vip + path, ()),
                (page, "through the VIP, HTTP/1.1, past the cache", "wrk", self.client, vip + path, (NO_CACHE,)),
                (page, f"direct to {self.web}, HTTP/1.1", "wrk", self.lbs[0], f"http://{web_address}{path}", direct_headers),
                (page, "baseline (stock Debian apache2 + mod_php), HTTP/1.1", "wrk", self.client,
                 f"http://{baseline}{path}", (f"Host: {self.lab.site}",)),
            ]
        cases.append(("dashboard (logged in)", "through the VIP, HTTP/1.1", "wrk", self.client, vip + "/wp-admin/",
                      (self.login_cookie(),)))
        for _, _, _, host, url, headers in cases:
            self.check(host, url, headers)
        samples = {i: [] for i in range(len(cases))}
        for _ in range(self.runs):
            for i, (_, _, tool, host, url, headers) in enumerate(cases):
                samples[i].append(getattr(self, tool)(host, url, headers))
        rows = []
        for i, (page, how, tool, _, url, _) in enumerate(cases):
            runs = samples[i]
            rows.append({"page": page, "how": how, "tool": tool, "url": url,
                         "rps": round(statistics.median(r["rps"] for r in runs), 1),
                         "latency_ms": statistics.median(r["latency_ms"] for r in runs),
                         "bad_answers": sum(r["bad"] + r["timeouts"] for r in runs),
                         "runs": [r["rps"] for r in runs]})
        return rows

    # VIP takeover.
    def holder(self):
        for lb in self.lbs:
            if self.lab.vip in self.sh(lb, "ip -4 -o addr show"):
                return lb
        return None

    def settle(self):
        """Both balancers up, the VIP on the first, the site answering through it."""
        for lb in self.lbs:
            if not self.lab.running(lb):
                docker("start", lb)
        self.lab.wait_until("the VIP back on the first balancer", lambda: self.holder() == self.lbs[0], timeout=90, interval=0.5)
        self.lab.wait_until("HAProxy on every balancer", lambda: all(
            "active" == self.sh(lb, "systemctl is-active haproxy || true").strip() for lb in self.lbs), timeout=60)
        time.sleep(3)

    def takeover_once(self, how):
        self.settle()
        active = self.holder()
        seconds = 8
        probe = subprocess.Popen([self.lab_docker, "exec", "-i", self.client, "python3", "-", self.lab.site, self.lab.vip,
                                  str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        probe.stdin.write(PROBE)
        probe.stdin.close()
        time.sleep(2)
        fault = time.time()
        docker("stop" if how == "stop" else "kill", active, timeout=60)
        samples = json.loads(probe.stdout.read())
        probe.wait()
        other = [lb for lb in self.lbs if lb != active][0]
        before = [s for s in samples if s[0] < fault]
        after = [s for s in samples if s[0] >= fault]
        served = next((s for s in after if s[1] == 200 and s[2].startswith(other.split(".")[0])), None)
        return {"fault": how, "takeover_s": round(served[0] - fault, 3) if served else None,
                "failed_requests": sum(1 for s in after if s[1] != 200),
                # Once the other balancer answered, every request must succeed.
                "failed_after_takeover": sum(1 for s in after if served and s[0] > served[0] and s[1] != 200),
                "requests_after_fault": len(after), "ok_before_fault": all(s[1] == 200 for s in before)}

    def takeover(self):
        results = {"stop": [], "kill": []}
        try:
            for _ in range(self.takeovers):
                for how in ("stop", "kill"):
                    results[how].append(self.takeover_once(how))
        finally:
            self.settle()
        rows = []
        for how, runs in results.items():
            times = [r["takeover_s"] for r in runs if r["takeover_s"] is not None]
            rows.append({"fault": {"stop": "graceful stop (docker stop)", "kill": "hard kill (docker kill)"}[how],
                         "takeover_s": round(statistics.median(times), 3) if times else None,
                         "requests_lost": [r["failed_requests"] for r in runs], "runs": [r["takeover_s"] for r in runs],
                         "failed_after_takeover": sum(r["failed_after_takeover"] for r in runs)})
        return rows

    # Converge times and their floor.
    def converge(self):
        hosts = list(self.lab.hostvars) if not self.short else [self.client]
        runs = []
        for _ in range(1 if self.short else 3):
            args = ["site.yml"] + (["--limit", ",".join(hosts)] if self.short else [])
            seconds, out = self.lab.playbook(*args, timeout=1800)
            changed = sum(int(n) for n in re.findall(r"changed=(\d+)", out))
            runs.append({"seconds": seconds, "changed": changed})
        built = self.builds()
        return {
            "hosts": len(hosts),
            "no_change_s": statistics.median(r["seconds"] for r in runs),
            "no_change_runs": runs,
            "first_converge": built[-1] if built else None,
            "floor": self.floor(hosts),
        }

    def builds(self):
        """The converges that built the lab (bin/lab's log of each converge: many changes per host)."""
        history = ROOT / "artifacts" / self.lab.name / "converges.jsonl"
        runs = [json.loads(line) for line in history.read_text().splitlines()] if history.exists() else []
        return [b for b in runs if b["changed"] >= 10 * max(1, b["hosts"])]

    def floor(self, hosts):
        """One apt-get install per host, all at once, of what the converge installed there."""
        image = f"wpha/debian:{self.lab.profile.get('LAB_DISTRO', 'trixie')}"
        names = [f"bench-floor-{i}" for i in range(len(hosts))]
        lists = {}
        for host in hosts:
            lists[host] = set(self.sh(host, "dpkg-query -W -f '${Package}\\n'").split())
        try:
            for name in names:
                docker("run", "-d", "--name", name, "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
                       "--tmpfs", "/run", "--tmpfs", "/run/lock", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
                       "--cgroupns", "host", "--network", self.network(), image, "/lib/systemd/systemd")
            base = set(docker("exec", names[0], "dpkg-query", "-W", "-f", "${Package}\n").stdout.split())
            for name in names:
                self.lab.wait_until("systemd in a floor container", lambda n=name: docker(
                    "exec", n, "systemctl", "is-system-running", check=False).stdout.strip() in ("running", "degraded"),
                    timeout=60, interval=0.5)
                docker("exec", name, "apt-get", "update", "-q", timeout=300)
            installs = []
            start = time.monotonic()
            for name, host in zip(names, hosts):
                wanted = " ".join(sorted(lists[host] - base))
                # Only what apt knows (ProxySQL comes from a package file).
                script = (f"pkgs=$(for p in {wanted}; do apt-cache show $p >/dev/null 2>&1 && echo $p; done); "
                          "DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs >/dev/null && echo $pkgs | wc -w")
                installs.append(subprocess.Popen([self.lab_docker, "exec", name, "bash", "-c", script],
                                                 stdout=subprocess.PIPE, text=True))
            counts = [int(p.communicate(timeout=1800)[0].strip() or 0) for p in installs]
            if any(p.returncode for p in installs):
                raise SystemExit("the floor's apt-get install failed")
            return {"seconds": round(time.monotonic() - start, 1), "packages": sum(counts), "hosts": len(hosts)}
        finally:
            for name in names:
                docker("rm", "-f", name, check=False)

    # Primary lost -> writes accepted, through the e2e drill.
    def promote(self):
        figures = ROOT / "artifacts" / "e2e" / "drill_stop_primary.json"
        source = "the last e2e drill"
        if not self.short:
            tests = ["tests/e2e/test_drills.py::test_without_the_primary_visitors_read_and_writes_get_the_read_only_page",
                     "tests/e2e/test_drills.py::test_the_lost_primary_rejoins_with_the_inventory_unchanged"]
            subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                           cwd=ROOT, check=True, env={**os.environ, "E2E_REQUIRED": "1"}, timeout=1800)
            source = "measured now"
        if not figures.exists():
            raise SystemExit(f"{figures} is missing: run the drill (pytest tests/e2e/test_drills.py) first")
        # The drill's figures count only if they were measured on this lab as
        # it stands: after the converge that built it.
        built = self.builds()
        if built and figures.stat().st_mtime < calendar.timegm(time.strptime(built[-1]["date"], "%Y-%m-%dT%H:%M:%SZ")):
            raise SystemExit(f"no fresh figure of the promotion: {figures} predates the {self.lab.name} lab's build "
                             f"({built[-1]['date']}); run the drill (pytest tests/e2e/test_drills.py) or bin/bench without --short")
        drill = json.loads(figures.read_text())
        return {"source": source, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(figures.stat().st_mtime)),
                # The refused request itself (older figures: with starting the client's script).
                "refused_in_s": drill["stop_write_refused"].get("request_s", drill["stop_write_refused"]["seconds"]),
                "db_promote_s": drill["db_promote_s"],
                "writes_restored_s": drill["writes_restored_after_s"],
                "reads_failed": drill["stop_loop"]["failed"], "reads_sent": drill["stop_loop"]["sent"]}

    def network(self):
        return self.lab.hostvars[self.lbs[0]].get("lab_networks", [{"name": "wpha-lab"}])[0]["name"]

    @property
    def lab_docker(self):
        from lablib import DOCKER
        return DOCKER


def check(data):
    """What must not happen, whatever the figures: bad answers under load, a
    takeover that never came, a no-change converge that changed something."""
    problems = [f"{r['page']}, {r['how']}: {r['bad_answers']} bad answers"
                for r in data.get("throughput", []) if r["bad_answers"]]
    problems += [f"{r['fault']}: the other balancer never answered" for r in data.get("takeover", [])
                 if r["takeover_s"] is None]
    problems += [f"{r['fault']}: {r['failed_after_takeover']} requests failed after the other balancer answered"
                 for r in data.get("takeover", []) if r.get("failed_after_takeover")]
    converge = data.get("converge")
    if converge:
        problems += [f"a no-change converge changed {r['changed']} things" for r in converge["no_change_runs"]
                     if r["changed"]]
    return problems


def markdown(data):
    lines = [f"# Bench of the {data['lab']} lab", "",
             f"{data['date']}, on {data['machine']}; {data['mode']} mode: medians of {data['runs']} runs of "
             f"{data['duration_s']} s each, {CONNECTIONS} connections, runs of every case interleaved.", ""]
    if data.get("throughput"):
        lines += ["| page | how | requests/s | mean latency (ms) | bad answers |", "| --- | --- | ---: | ---: | ---: |"]
        lines += [f"| {r['page']} | {r['how']} | {r['rps']} | {r['latency_ms']} | {r['bad_answers']} |" for r in data["throughput"]]
        lines.append("")
    if data.get("converge"):
        c = data["converge"]
        first = c["first_converge"]
        lines += ["| converge | seconds |", "| --- | ---: |",
                  f"| first (the last bin/lab that built the stack: {first['changed']} changes on {first['hosts']} hosts) "
                  f"| {first['seconds']} |" if first else "| first | not recorded (run ./bin/lab on fresh containers) |",
                  f"| no change ({c['hosts']} hosts, median of {len(c['no_change_runs'])}) | {c['no_change_s']} |",
                  f"| floor: one apt-get install per host of the same {c['floor']['packages']} packages, "
                  f"{c['floor']['hosts']} fresh containers at once | {c['floor']['seconds']} |", ""]
    if data.get("promote"):
        p = data["promote"]
        lines += ["| primary database lost (drill: " + p["source"] + ", " + p["date"] + ") | seconds |", "| --- | ---: |",
                  f"| a write meanwhile: answered with the read-only page in | {p['refused_in_s']} |",
                  f"| db_promote.yml run | {p['db_promote_s']} |",
                  f"| primary lost to writes accepted | {p['writes_restored_s']} |",
                  f"| reads failed meanwhile | {p['reads_failed']} of {p['reads_sent']} |", ""]
    if data.get("takeover"):
        lines += ["| VIP takeover after | median (s) | runs (s) | requests lost per run |", "| --- | ---: | --- | --- |"]
        lines += [f"| {r['fault']} | {r['takeover_s']} | {r['runs']} | {r['requests_lost']} |" for r in data["takeover"]]
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="a few seconds per figure (CI), not the full figures")
    parser.add_argument("--only", choices=["throughput", "takeover", "promote", "converge"], action="append",
                        help="measure only this (repeatable)")
    parser.add_argument("--runs", type=int, help="runs per throughput case (default 5, short 1)")
    parser.add_argument("--seconds", type=int, help="seconds per throughput run (default 10, short 1)")
    parser.add_argument("--keep-baseline", action="store_true", help="leave the baseline container for the next run")
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "bench"))
    args = parser.parse_args()
    lab = Lab()
    missing = [h for h in lab.hostvars if not lab.running(h)]
    if missing:
        raise SystemExit(f"lab containers not running: {missing}; bring the lab up with ./bin/lab")
    bench = Bench(lab, args.short, args.runs, args.seconds)
    started = time.monotonic()
    cpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    mem = round(int(pathlib.Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024)
    data = {"lab": lab.name, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{cpu} CPUs, {mem} GiB, everything on one machine", "mode": "short" if args.short else "full",
            "runs": bench.runs, "duration_s": bench.duration}
    only = args.only or ["throughput", "takeover", "promote", "converge"]
    try:
        bench.ensure_tools()
        if "throughput" in only:
            data["throughput"] = bench.throughput()
        if "takeover" in only:
            data["takeover"] = bench.takeover()
        if "promote" in only:
            data["promote"] = bench.promote()
        if "converge" in only:
            data["converge"] = bench.converge()
    finally:
        if not args.keep_baseline:
            docker("rm", "-f", BASELINE, check=False)
    data["seconds"] = round(time.monotonic() - started, 1)
    problems = check(data)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(data, indent=2))
    (out / "results.md").write_text(markdown(data))
    print(markdown(data))
    print(f"({data['seconds']} s; {out}/results.json, results.md)")
    if problems:
        raise SystemExit("the bench measured what must not happen:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
