"""Throughput: wrk (HTTP/1.1) and h2load (HTTP/2) load the front page, a post
and a static file through the VIP, past the page cache, direct to a web host
and on the baseline, and the logged-in dashboard; every case several times,
interleaved, medians kept."""

import json
import re
import statistics

from harness.bench import CONNECTIONS, baseline

NO_CACHE = "Cookie: wordpress_no_cache=1"

# Each tool's command and what its report says: requests/s, the mean
# latency, answers that were not 2xx/3xx, and requests that got no answer.
TOOLS = {
    "wrk": {
        "command": "wrk -t 2 -c {connections} -d {seconds}s --timeout 10s {headers} '{url}'",
        "rps": r"Requests/sec:\s+([\d.]+)",
        "latency": r"Latency\s+([\d.]+)(us|ms|s)\b",
        "bad": r"Non-2xx or 3xx responses:\s+(\d+)",
        # Every socket error: connect, read, write and timeout.
        "errors": r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
    },
    "h2load": {
        "command": "h2load -c {connections} -m 1 -D {seconds} {headers} '{url}'",
        "rps": r"finished in [\d.]+\w+, ([\d.]+) req/s",
        "latency": r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\b",
        "bad": r"status codes: \d+ 2xx, \d+ 3xx, (\d+) 4xx, (\d+) 5xx",
        # Requests that failed, errored or timed out never got a status code.
        "errors": r"requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed, (\d+) errored, (\d+) timeout",
    },
}
TO_MS = {"us": 0.001, "ms": 1, "s": 1000}


def parse(tool, out):
    """One run's figures from the tool's report: requests/s, mean latency
    (ms), bad answers, requests without an answer (counted as bad too)."""
    spec = TOOLS[tool]
    rps = re.search(spec["rps"], out)
    latency = re.search(spec["latency"], out)
    if not rps or not latency:
        raise SystemExit(f"{tool} printed no figures:\n{out[-2000:]}")

    def total(pattern):
        found = re.search(pattern, out)
        return sum(map(int, found.groups())) if found else 0

    return {"rps": float(rps.group(1)), "latency_ms": round(float(latency.group(1)) * TO_MS[latency.group(2)], 2),
            "bad": total(spec["bad"]), "timeouts": total(spec["errors"])}


def run(bench, tool, host, url, headers=()):
    command = TOOLS[tool]["command"].format(connections=CONNECTIONS, seconds=bench.duration, url=url,
                                            headers=" ".join(f"-H '{h}'" for h in headers))
    return parse(tool, bench.sh(host, command, timeout=120))


def check(bench, host, url, headers=()):
    """The page answers 200 before it is measured (a 301 or an error page would measure the wrong thing)."""
    args = " ".join(f"-H '{h}'" for h in headers)
    status = bench.sh(host, f"curl -s -o /dev/null -w '%{{http_code}}' {args} '{url}'").strip()
    if status != "200":
        raise SystemExit(f"{url} from {host} answered {status}, not 200: not measured")


def pages(bench):
    """The pages measured: the front page, a post and a static file; the short
    mode (CI) runs each path once, with the front page (the same code for all)."""
    if bench.short:
        return {"front page": "/"}
    site = f"https://{bench.lab.site}"
    post = json.loads(bench.sh(bench.client, f"curl -sS --fail '{site}/wp-json/wp/v2/posts?per_page=1&_fields=link'"))
    post_path = "/" + post[0]["link"].split("/", 3)[3]
    static = "/wp-includes/css/dist/block-library/style.min.css"
    return {"front page": "/", "post": post_path, "static file": static}


def login_cookie(bench):
    lab, client = bench.lab, bench.client
    site = f"https://{lab.site}"
    user = lab.hostvars[bench.web].get("wordpress_admin_user", "admin")
    jar = "/tmp/bench-jar"
    bench.sh(client, f"rm -f {jar}; curl -sS -o /dev/null -c {jar} '{site}/wp-login.php'")
    bench.sh(client, f"curl -sS -o /dev/null -b {jar} -c {jar} --data-urlencode 'log={user}' --data-urlencode "
                     f"'pwd={lab.secret('wordpress_admin_password')}' -d testcookie=1 '{site}/wp-login.php'")
    cookies = [line.split("\t") for line in bench.sh(client, f"cat {jar}; rm -f {jar}").splitlines()
               if line.count("\t") == 6 and not line.startswith("# ")]
    value = "; ".join(f"{c[5]}={c[6]}" for c in cookies if c[5].startswith("wordpress"))
    if "wordpress_logged_in" not in value:
        raise SystemExit("could not log in to measure the dashboard")
    return f"Cookie: {value}"


def ensure_tools(bench):
    for host, packages in ((bench.client, "wrk nghttp2-client"), (bench.lbs[0], "wrk"), (bench.lbs[1], "wrk")):
        bench.sh(host, f"command -v wrk >/dev/null && {{ [ '{packages}' = wrk ] || command -v h2load >/dev/null; }} "
                       f"|| DEBIAN_FRONTEND=noninteractive apt-get install -y -q {packages} >/dev/null")


def throughput(bench):
    lab = bench.lab
    base = baseline.start(bench)
    vip = f"https://{lab.site}"
    web_address = lab.address(bench.web)
    direct_headers = (f"Host: {lab.site}", "X-Forwarded-Proto: https")
    cases = []
    for page, path in pages(bench).items():
        cases += [
            (page, "through the VIP, HTTP/1.1 (page cache)", "wrk", bench.client, vip + path, ()),
            (page, "through the VIP, HTTP/2 (page cache)", "h2load", bench.client, vip + path, ()),
            (page, "through the VIP, HTTP/1.1, past the cache", "wrk", bench.client, vip + path, (NO_CACHE,)),
            (page, f"direct to {bench.web}, HTTP/1.1", "wrk", bench.lbs[0], f"http://{web_address}{path}", direct_headers),
            (page, "baseline (stock Debian apache2 + mod_php), HTTP/1.1", "wrk", bench.client,
             f"http://{base}{path}", (f"Host: {lab.site}",)),
        ]
    cases.append(("dashboard (logged in)", "through the VIP, HTTP/1.1", "wrk", bench.client, vip + "/wp-admin/",
                  (login_cookie(bench),)))
    for _, _, _, host, url, headers in cases:
        check(bench, host, url, headers)
    samples = {i: [] for i in range(len(cases))}
    for _ in range(bench.runs):
        for i, (_, _, tool, host, url, headers) in enumerate(cases):
            samples[i].append(run(bench, tool, host, url, headers))
    rows = []
    for i, (page, how, tool, _, url, _) in enumerate(cases):
        runs = samples[i]
        rows.append({"page": page, "how": how, "tool": tool, "url": url,
                     "rps": round(statistics.median(r["rps"] for r in runs), 1),
                     "latency_ms": statistics.median(r["latency_ms"] for r in runs),
                     "bad_answers": sum(r["bad"] + r["timeouts"] for r in runs),
                     "runs": [r["rps"] for r in runs]})
    return rows
