"""Behaviour of the HAProxy + keepalived pair and its Varnish page cache, observed from the client container.

The client resolves www.example.test and admin.example.test to the VIP and
trusts the lab CA through its system trust store. Figures measured here
(distributions, takeover time, lost requests) are printed (pytest -s) and
written to artifacts/loadbalancers-<distro>.txt at the project root.
"""

import base64
import collections
import json
import os
import pathlib
import re
import tempfile
import time
import uuid

import pytest

from harness import molecule

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
VIP = "10.213.10.100"
CLIENT_IP = "10.213.10.51"
SITE = "www.example.test"
STATS = "http://10.213.10.11:8404/stats"
STATS_AUTH = "admin:lbs-stats-secret"
CA = "/usr/local/share/ca-certificates/wpha-lab-ca.crt"
DISTRO = os.environ.get("MOLECULE_DISTRO", "trixie")
ARTIFACT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", ".")) / "artifacts" / f"loadbalancers-{DISTRO}.txt"

ARTIFACT.unlink(missing_ok=True)
testinfra_hosts = ["ansible://lbs-client?ansible_inventory=" + INVENTORY]


lb1, lb2, web1, web2 = (molecule.host(f"lbs-{name}") for name in ("lb1", "lb2", "web1", "web2"))


def report(line):
    print(line)
    ARTIFACT.parent.mkdir(exist_ok=True)
    with ARTIFACT.open("a") as f:
        f.write(line + "\n")


def fetch(host, path, n=1, opts="", site=SITE):
    """n requests in one curl run (URL globbing); one JSON body per request."""
    url = f"https://{site}{path}" + (f"?n=[1-{n}]" if n > 1 else "")
    out = host.check_output(f"curl -sf --max-time 20 {opts} '{url}'")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def servers(bodies):
    return collections.Counter(b["server"] for b in bodies)


def has_vip(lb):
    return f" {VIP}/" in lb.check_output("ip -4 -o addr show")


def start_loop(host, url, seconds, interval, out):
    script = base64.b64encode(pathlib.Path(__file__).with_name("loop.py").read_bytes()).decode()
    host.run_test(f"echo {script} | base64 -d > /tmp/loop.py")
    unit = "lbs-loop-" + str(int(time.time() * 1000))
    host.run_expect([0], f"systemd-run --unit={unit} --collect python3 /tmp/loop.py {url} {seconds} {interval} {out}")


def wait_loop(host, out, limit):
    deadline = time.time() + limit
    while time.time() < deadline:
        lines = host.check_output(f"cat {out} 2>/dev/null || true").splitlines()
        if lines and json.loads(lines[-1]).get("done"):
            return [json.loads(line) for line in lines[:-1]]
        time.sleep(0.5)
    pytest.fail(f"request loop {out} did not finish within {limit}s")


def stats_rows(host):
    out = host.check_output(f"curl -sf -u {STATS_AUTH} '{STATS};csv'")
    head, *rows = out.splitlines()
    keys = head.lstrip("# ").split(",")
    return [dict(zip(keys, r.split(","))) for r in rows]


def server_status(host, backend, server):
    return next(r["status"] for r in stats_rows(host) if r["pxname"] == backend and r["svname"] == server)


# ---------------------------------------------------------------- balancing


def test_vip_is_held_by_the_master():
    assert has_vip(lb1)
    assert not has_vip(lb2)


def test_the_vip_lives_on_the_private_interface_not_the_default_routes():
    """The default route leaves by the "public" network (prepare.yml): VRRP
    and the VIP follow keepalived_address's interface all the same."""
    def device(lb, match):
        return next(line.split()[1] for line in lb.check_output("ip -4 -o addr show").splitlines() if match in line)
    private = device(lb1, " 10.213.10.11/")
    assert device(lb1, f" {VIP}/") == private
    assert f"dev {private}" not in lb1.check_output("ip route show default")
    assert f"interface {private}" in lb1.check_output("cat /etc/keepalived/keepalived.conf")


def test_roundrobin_splits_requests_evenly(host):
    count = servers(fetch(host, "/", 100))
    report(f"roundrobin, 100 requests: {dict(count)}")
    assert set(count) == {"lbs-web1", "lbs-web2"}
    assert 40 <= count["lbs-web1"] <= 60


def test_weights_3_to_1_split_75_25(host):
    count = servers(fetch(host, "/t/weighted", 100))
    report(f"weights 3:1, 100 requests: {dict(count)}")
    assert 65 <= count["lbs-web1"] <= 85


def test_source_balance_pins_the_client_to_one_backend(host):
    count = servers(fetch(host, "/t/source", 100))
    report(f"balance source, 100 requests: {dict(count)}")
    assert len(count) == 1 and sum(count.values()) == 100


def test_cookie_persistence_keeps_a_client_on_one_backend(host):
    without = servers(fetch(host, "/t/cookie", 20))
    assert len(without) == 2, "without the cookie requests are balanced"
    host.run("rm -f /tmp/jar")
    count = servers(fetch(host, "/t/cookie", 100, "-c /tmp/jar -b /tmp/jar"))
    report(f"cookie persistence, 100 requests with a cookie jar: {dict(count)}")
    assert len(count) == 1
    assert "LBSERVER" in host.check_output("cat /tmp/jar")


def test_source_stickiness_keeps_a_client_on_one_backend(host):
    count = servers(fetch(host, "/t/pinned", 100))
    report(f"stick on src (leastconn), 100 requests: {dict(count)}")
    assert len(count) == 1


# ---------------------------------------------------------------- headers and TLS


def test_backends_see_client_address_and_https(host):
    body = fetch(host, "/headers")[0]
    assert body["peer"] in ("10.213.10.11", "10.213.10.12"), "the backend talks to a load balancer"
    assert body["headers"]["x-forwarded-for"] == CLIENT_IP
    assert body["headers"]["x-forwarded-proto"] == "https"


# ---------------------------------------------------------------- layer 4


def l4(host, port, n):
    """n HTTPS requests through a layer-4 listener of the VIP, each on its own
    connection: [(the CN of the certificate the client got, the JSON answer)]."""
    request = f"GET / HTTP/1.1\\r\\nHost: {SITE}\\r\\nConnection: close\\r\\n\\r\\n"
    out = host.check_output(
        f"for i in $(seq {n}); do printf '{request}' | timeout 10 openssl s_client -quiet "
        f"-connect {VIP}:{port} -servername {SITE} 2>&1; echo; echo '--'; done")
    answers = []
    for chunk in out.split("\n--\n"):
        cn = re.search(r"depth=0 CN\s*=\s*(\S+)", chunk)
        body = next((line for line in chunk.splitlines() if line.startswith("{")), None)
        if cn or body:
            answers.append((cn.group(1) if cn else None, json.loads(body) if body else None))
    return answers


def test_layer4_passes_tls_through_to_each_backend_round_robin_with_the_client_address(host):
    answers = l4(host, 9443, 20)
    count = collections.Counter(body["server"] for _, body in answers if body)
    report(f"layer 4 (TLS passthrough, roundrobin), 20 connections: {dict(count)}")
    assert len(answers) == 20 and all(body for _, body in answers), answers
    # TLS ended on the backend itself: the certificate is the one that answered.
    assert all(cn == body["server"] for cn, body in answers), answers
    assert count == {"lbs-web1": 10, "lbs-web2": 10}
    # The connection came from a balancer; the client's own address came in
    # the PROXY protocol header, and no HTTP header was added on the way.
    assert {body["peer"] for _, body in answers} <= {"10.213.10.11", "10.213.10.12"}
    assert {body["proxy_peer"] for _, body in answers} == {CLIENT_IP}
    assert not any("x-forwarded-for" in body["headers"] for _, body in answers)


def test_layer4_sni_passes_the_sites_name_only(host):
    """The passthrough listener names the site (sni): a ClientHello for another
    name, one with no name, and plain HTTP are closed at the balancer (no
    certificate, no answer); the listener without sni passes any name."""
    def handshake(port, name_opts):
        return host.run(f"echo | timeout 10 openssl s_client -connect {VIP}:{port} {name_opts} 2>&1")
    for opts in ("-servername other.example.test", "-noservername"):
        out = handshake(9443, opts)
        assert out.rc != 0 and "BEGIN CERTIFICATE" not in out.stdout and "depth=0" not in out.stdout, (opts, out.stdout)
    plain = host.run(f"curl -s --max-time 8 -H 'Host: {SITE}' http://{VIP}:9443/")
    assert plain.rc != 0 and plain.stdout == "", (plain.rc, plain.stdout)
    # The site's name in another case is the site's name.
    assert "depth=0 CN" in handshake(9443, f"-servername {SITE.upper()}").stdout
    assert "depth=0 CN" in handshake(9444, "-servername other.example.test").stdout


def test_layer4_source_persistence_keeps_a_client_on_one_backend(host):
    count = collections.Counter(body["server"] for _, body in l4(host, 9444, 20) if body)
    report(f"layer 4, stick on src (leastconn), 20 connections: {dict(count)}")
    assert len(count) == 1 and sum(count.values()) == 20


def test_layer4_check_takes_a_failed_backend_out_and_back(host):
    web1.check_output("systemctl stop echo@8080")
    try:
        deadline = time.time() + 10
        while not server_status(host, "passthrough", "web1").startswith("DOWN") and time.time() < deadline:
            time.sleep(0.2)
        assert server_status(host, "passthrough", "web1").startswith("DOWN")
        count = collections.Counter(body["server"] for _, body in l4(host, 9443, 6) if body)
        assert count == {"lbs-web2": 6}, count
    finally:
        web1.check_output("systemctl start echo@8080")
    deadline = time.time() + 15
    while server_status(host, "passthrough", "web1") != "UP" and time.time() < deadline:
        time.sleep(0.3)
    count = collections.Counter(body["server"] for _, body in l4(host, 9443, 6) if body)
    report(f"layer 4, web1's check port stopped: its HTTP check took it out; started again: {dict(count)}")
    assert count == {"lbs-web1": 3, "lbs-web2": 3}, count


def test_client_supplied_forwarding_headers_never_reach_the_backends(host):
    spoofed = "-H 'X-Forwarded-For: 203.0.113.66' -H 'Forwarded: for=203.0.113.66' -H 'X-Real-IP: 203.0.113.66'"
    body = fetch(host, "/headers", opts=spoofed)[0]
    assert body["headers"]["x-forwarded-for"] == CLIENT_IP, body["headers"]
    assert "forwarded" not in body["headers"] and "x-real-ip" not in body["headers"], body["headers"]


def status(host, url, opts=""):
    return host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 {opts} '{url}'")


def test_an_unknown_host_name_gets_421_and_reaches_no_backend(host):
    assert status(host, "https://unknown.example.test/", f"--resolve unknown.example.test:443:{VIP} -k") == "421"
    assert status(host, f"http://{VIP}/") == "421"  # by address, no name
    assert status(host, f"https://{SITE}/") == "200"
    assert status(host, "https://admin.example.test/") == "200"


def test_an_oversized_request_body_is_refused(host):
    host.check_output("head -c 2000000 /dev/zero > /tmp/big-body")
    assert status(host, f"https://{SITE}/t/post", "-X POST --data-binary @/tmp/big-body") == "413"
    assert status(host, f"https://{SITE}/t/post", "-X POST -d small=1") == "200"


def test_a_login_brute_force_is_rate_limited_while_other_pages_answer(host):
    codes = [status(host, f"https://{SITE}/wp-login.php", "-X POST -d log=admin -d pwd=wrong") for _ in range(15)]
    assert codes[:10] == ["200"] * 10 and set(codes[10:]) == {"429"}, codes
    assert "retry-after: 60" in host.check_output(
        f"curl -s -D - -o /dev/null -X POST -d log=admin 'https://{SITE}/wp-login.php'").lower()
    assert status(host, f"https://{SITE}/") == "200"
    assert status(host, f"https://{SITE}/wp-login.php") == "200"  # GET is not counted
    report(f"login brute force: 15 POSTs to /wp-login.php in a row: {codes.count('200')} answered, {codes.count('429')} refused (429)")


def test_https_is_verified_against_the_lab_ca(host):
    # Verification on (no -k), with the lab CA as the only trust anchor.
    host.run_expect([0], f"curl -sf --cacert {CA} --capath /nonexistent https://{SITE}/")
    # And it really is verified: an unrelated CA makes the same request fail.
    host.run_test("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=other"
                  " -keyout /tmp/other.key -out /tmp/other.crt -days 1 2>/dev/null")
    assert host.run(f"curl -sf --cacert /tmp/other.crt --capath /nonexistent https://{SITE}/").rc == 60


def test_http_is_redirected_to_https(host):
    out = host.check_output(f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' http://{SITE}/a?b=1")
    assert out == f"301 https://{SITE}/a?b=1"


def test_hsts_header_is_sent(host):
    headers = host.check_output(f"curl -sf -D - -o /dev/null https://{SITE}/").lower()
    assert "strict-transport-security: max-age=63072000" in headers


def test_tls_1_1_is_refused_by_the_server(host):
    # OpenSSL 3 clients refuse TLS 1.1 at the default security level; SECLEVEL=0
    # lets this client offer it. A local TLS 1.1 server proves the client can.
    host.run_test("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost"
                  " -keyout /tmp/s.key -out /tmp/s.crt -days 1 2>/dev/null")
    host.run_test("systemd-run --unit=lbs-tls11-$(date +%s%N) --collect timeout 10 openssl s_server -accept 127.0.0.1:4433"
                  " -tls1_1 -cipher DEFAULT@SECLEVEL=0 -cert /tmp/s.crt -key /tmp/s.key -www")
    time.sleep(1)
    control = host.run("openssl s_client -connect 127.0.0.1:4433 -tls1_1 -cipher DEFAULT@SECLEVEL=0 </dev/null 2>&1")
    assert control.rc == 0, control.stdout
    assert "TLSv1.1" in control.stdout and "Cipher is (NONE)" not in control.stdout
    refused = host.run(f"openssl s_client -connect {VIP}:443 -servername {SITE} -tls1_1 -cipher DEFAULT@SECLEVEL=0 </dev/null 2>&1")
    assert refused.rc != 0
    assert "alert protocol version" in refused.stdout, refused.stdout
    report("TLS 1.1 to the VIP: refused by the server (alert protocol version); same client completes TLS 1.1 to a local test server")


def test_tls_1_2_and_alpn_h2_are_offered(host):
    out = host.check_output(f"openssl s_client -connect {VIP}:443 -servername {SITE} -tls1_2 -alpn h2,http/1.1 </dev/null 2>&1")
    assert "ALPN protocol: h2" in out
    assert "Verify return code: 0 (ok)" in out
    assert host.check_output(f"curl -sf --http2 -o /dev/null -w '%{{http_version}}' https://{SITE}/") == "2"


# ---------------------------------------------------------------- routing


@pytest.mark.parametrize("site,opts,path,port", [
    (SITE, "", "/wp-admin/index.php", 8081),
    (SITE, "", "/wp-login.php", 8081),
    ("admin.example.test", "", "/", 8081),
    (SITE, "-H 'X-Canary: 1'", "/", 8082),
    (SITE, "-b canary=1", "/", 8082),
    (SITE, "-H 'X-Canary: 0'", "/", 8080),
    (SITE, "", "/blog/", 8080),
])
def test_acls_route_by_path_host_header_and_cookie(host, site, opts, path, port):
    assert {b["port"] for b in fetch(host, path, 6, opts, site)} == {port}


# ---------------------------------------------------------------- page cache
# Anonymous GETs for the site backend go through Varnish on the balancer,
# which says how it answered in X-Cache (HAProxy says BYPASS for what it did
# not send there). The echo server lets it keep /t/cache* pages only (all
# else is no-store) and writes those requests down for received().


def visit(host, path, opts=""):
    """One request to the site: status, headers (names in lower case) and the JSON body of a 200."""
    out = host.check_output(f"curl -s --max-time 20 -D - {opts} 'https://{SITE}{path}'")
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    status_line, *fields = head.splitlines()
    headers = {name.strip().lower(): value.strip() for name, _, value in (f.partition(":") for f in fields)}
    code = int(status_line.split()[1])
    return code, headers, json.loads(body) if code == 200 else None


def test_an_anonymous_page_is_stored_and_served_again_without_the_backend(host):
    token = uuid.uuid4().hex
    first, again = visit(host, f"/t/cache?u={token}"), visit(host, f"/t/cache?u={token}")
    assert (first[0], first[1].get("x-cache")) == (200, "MISS")
    assert (again[0], again[1].get("x-cache")) == (200, "HIT")
    assert again[2] == first[2], "the hit is the first answer, from the same server"
    assert received(token) == {"GET": 1}


def test_a_visitors_other_cookies_neither_reach_the_backend_nor_split_the_cache(host):
    token = uuid.uuid4().hex
    code, headers, body = visit(host, f"/t/cache?u={token}", "-b _ga=GA1.2.3")
    assert (code, headers.get("x-cache")) == (200, "MISS")
    assert "cookie" not in body["headers"], body["headers"]
    assert visit(host, f"/t/cache?u={token}")[1].get("x-cache") == "HIT"
    assert received(token) == {"GET": 1}


def test_a_logged_in_user_bypasses_the_cache_and_gets_a_fresh_page(host):
    token = uuid.uuid4().hex
    visit(host, f"/t/cache?u={token}")
    assert visit(host, f"/t/cache?u={token}")[1].get("x-cache") == "HIT", "the page is cached for visitors"
    code, headers, body = visit(host, f"/t/cache?u={token}", "-b wordpress_logged_in_abc=1")
    assert (code, headers.get("x-cache")) == (200, "BYPASS")
    assert body["headers"].get("cookie") == "wordpress_logged_in_abc=1", "a backend answered the user"
    assert received(token) == {"GET": 2}


def test_a_visitor_never_gets_a_page_made_for_a_logged_in_user(host):
    token = uuid.uuid4().hex
    assert visit(host, f"/t/cache?u={token}", "-b wordpress_logged_in_abc=1")[1].get("x-cache") == "BYPASS"
    code, headers, body = visit(host, f"/t/cache?u={token}")
    assert (code, headers.get("x-cache")) == (200, "MISS")
    assert "cookie" not in body["headers"], body["headers"]
    assert received(token) == {"GET": 2}


def test_a_page_that_sets_a_cookie_is_never_stored(host):
    token = uuid.uuid4().hex
    answers = [visit(host, f"/t/cache-cookie?u={token}") for _ in range(2)]
    assert [code for code, _, _ in answers] == [200, 200]
    assert all(headers.get("x-cache") in ("MISS", "PASS") for _, headers, _ in answers), [h for _, h, _ in answers]
    assert all("visitor=1" in headers.get("set-cookie", "") for _, headers, _ in answers)
    assert received(token) == {"GET": 2}


@pytest.mark.parametrize("path,opts", [
    ("/wp-admin/?u={token}", ""),
    ("/t/cache/feed/?u={token}", ""),  # on the site backend, but a bypass URL
    ("/t/cache?u={token}", "-d x=1"),  # POST
])
def test_admin_pages_bypass_urls_and_posts_are_never_cached(host, path, opts):
    token = uuid.uuid4().hex
    answers = [visit(host, path.format(token=token), opts) for _ in range(2)]
    assert [(code, headers.get("x-cache")) for code, headers, _ in answers] == [(200, "BYPASS")] * 2
    if path.startswith("/t/cache"):
        assert sum(received(token).values()) == 2


def test_while_no_web_host_answers_cached_pages_are_still_served(host):
    cached, uncached = f"/t/cache?u={uuid.uuid4().hex}", f"/t/cache?u={uuid.uuid4().hex}"
    code, headers, stored = visit(host, cached)
    assert (code, headers.get("x-cache")) == (200, "MISS")
    try:
        stopped = time.time()
        for web in (web1, web2):
            web.check_output("systemctl stop echo@8080")
        # HAProxy marks both down (fall 2 x inter 1 s); Varnish's probe of its
        # origin (every 1 s, 2 bad in a row) then sees it sick.
        hit = miss = None
        deadline = time.time() + 10
        while time.time() < deadline:
            if all(server_status(host, "site", s).startswith("DOWN") for s in ("web1", "web2")):
                hit, miss = visit(host, cached), visit(host, uncached)
                if hit[0] == 200 and hit[1].get("x-cache") in ("HIT", "HIT-STALE") and miss[0] >= 500:
                    break
            time.sleep(0.3)
        else:
            pytest.fail("both web hosts stopped 10 s ago: " + (
                f"cached page {hit[0]} {hit[1].get('x-cache')}, uncached page {miss[0]}" if hit else "HAProxy never marked them down"))
        report(f"page cache, both web hosts down: {time.time() - stopped:.1f}s after the stop a cached page is answered "
               f"{hit[0]} ({hit[1].get('x-cache')}), an uncached one {miss[0]}")
        assert hit[2] == stored, "the copy stored before the stop"
    finally:
        for web in (web1, web2):
            web.run("systemctl start echo@8080")
        # Back in HAProxy (rise 2 x inter 1 s) and in Varnish's probe: a miss is fetched again.
        deadline = time.time() + 15
        while time.time() < deadline:
            if (all(server_status(host, "site", s) == "UP" for s in ("web1", "web2"))
                    and status(host, f"https://{SITE}/?u={uuid.uuid4().hex}") == "200"):
                break
            time.sleep(0.5)
    assert status(host, f"https://{SITE}/t/cache?u={uuid.uuid4().hex}") == "200", "the origin is back for the cache"


def test_an_error_from_the_web_hosts_never_replaces_a_cached_page(host):
    """A copy past its freshness and grace is fetched again while the web hosts
    look healthy; when they answer that page with 500, visitors keep the copy."""
    path = f"/t/cache-short?u={uuid.uuid4().hex}"
    code, headers, stored = visit(host, path)
    assert (code, headers.get("x-cache")) == (200, "MISS")
    # max-age=1, then the grace a healthy origin gets (varnish_grace, 10 s).
    time.sleep(1 + 10 + 1)
    try:
        for web in (web1, web2):
            web.check_output("touch /run/echo-cache-fail")
        answers = [visit(host, path) for _ in range(3)]
        assert all(server_status(host, "site", s) == "UP" for s in ("web1", "web2")), "the web hosts stayed up"
    finally:
        for web in (web1, web2):
            web.run("rm -f /run/echo-cache-fail")
    report("page cache, a page answered 500 while the web hosts look up: " +
           ", ".join(f"{code} {headers.get('x-cache')}" for code, headers, _ in answers))
    assert [(code, headers.get("x-cache")) for code, headers, _ in answers] == [(200, "HIT-STALE")] * 3
    assert all(body == stored for _, _, body in answers), "the copy stored before the errors"
    assert received(path.split("=")[1]).get("GET", 0) >= 2, "the web hosts were asked again"


# ---------------------------------------------------------------- stats, metrics, runtime API


def test_stats_page_requires_credentials(host):
    code = "curl -s -o /dev/null -w '%{http_code}' "
    assert host.check_output(code + STATS) == "401"
    assert host.check_output(code + f"-u admin:wrong {STATS}") == "401"
    assert host.check_output(code + f"-u {STATS_AUTH} {STATS}") == "200"


def test_prometheus_exporter_answers_on_the_internal_address(host):
    assert "haproxy_process_" in host.check_output("curl -sf http://10.213.10.11:8405/metrics")


def test_runtime_api_socket_answers():
    out = lb1.check_output("python3 -c \"import socket; s=socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock');"
                           " s.sendall(b'show servers state site\\n'); print(s.makefile().read())\"")
    assert "web1" in out and "web2" in out


def test_keepalived_checks_run_as_an_unprivileged_user():
    conf = lb1.check_output("cat /etc/keepalived/keepalived.conf")
    assert "script_user keepalived_script" in conf and "enable_script_security" in conf
    account = lb1.user("keepalived_script")
    assert account.exists and account.uid < 1000 and account.shell == "/usr/sbin/nologin"
    # What the check runs answers the same for that user as for root.
    assert lb1.run("runuser -u keepalived_script -- /usr/bin/systemctl is-active --quiet haproxy.service").rc == 0


# ---------------------------------------------------------------- failures


def test_a_backend_dying_costs_no_request(host):
    out = "/tmp/backend-loop.jsonl"
    start_loop(host, f"https://{SITE}/", 12, 0.05, out)
    time.sleep(1.5)
    stopped = float(web1.check_output("date +%s.%N; systemctl stop echo@8080").split()[0])
    down_at = None
    while time.time() < stopped + 8:
        if server_status(host, "site", "web1").startswith("DOWN"):
            down_at = time.time()
            break
        time.sleep(0.2)
    assert down_at is not None, "HAProxy never marked web1 down"
    time.sleep(1)
    web1.check_output("systemctl start echo@8080")
    results = wait_loop(host, out, 20)
    failed = [r for r in results if not r["ok"]]
    after_down = [r["server"] for r in results if down_at <= r["t"] < down_at + 1]
    report(f"backend stop: {len(results)} requests, {len(failed)} failed; web1 marked DOWN "
           f"{down_at - stopped:.1f}s after the stop (fall 2 x inter 1s = 2s, +0.2s polling)")
    assert not failed, failed[:3]
    assert after_down and set(after_down) == {"lbs-web2"}
    assert down_at - stopped <= 2 + 1.5
    # Back up after rise x inter: it gets traffic again.
    deadline = time.time() + 10
    while server_status(host, "site", "web1") != "UP" and time.time() < deadline:
        time.sleep(0.3)
    count = servers(fetch(host, "/", 20))
    assert count["lbs-web1"] >= 5 and count["lbs-web2"] >= 5


def watch_vip(lb, out):
    """Record (in a file on lb) the moment the VIP appears there; gives up after 20 s."""
    lb.run_test(f"rm -f {out}; systemd-run --unit=lbs-vipwatch-$(date +%s%N) --collect /bin/sh -c '"
                "end=$(($(date +%s)+20)); until ip -4 -o addr show | grep -q \" " + VIP + "/\"; do"
                f" sleep 0.02; [ $(date +%s) -gt $end ] && exit 1; done; date +%s.%N > {out}'")


def watched(lb, out, limit=10):
    deadline = time.time() + limit
    while time.time() < deadline:
        got = lb.run(f"cat {out}")
        if got.rc == 0 and got.stdout.strip():
            return float(got.stdout)
        time.sleep(0.3)
    return None


def received(token):
    """Requests whose path carries token, as the two backends wrote them down."""
    lines = []
    for web in (web1, web2):
        lines += web.check_output("cat /run/echo-requests.log 2>/dev/null || true").splitlines()
    return collections.Counter(line.split()[0] for line in lines if token in line)


@pytest.mark.parametrize("path,status", [("/t/fail", 500), ("/t/slow", 504)])
def test_an_answer_of_the_application_is_never_run_twice(host, path, status):
    # /t/fail answers 500; /t/slow answers after timeout server (3 s here).
    token = f"{path.rsplit('/', 1)[1]}-{time.time_ns()}"
    for method in ("POST", "GET"):
        body = "-d x=1" if method == "POST" else ""
        out = host.check_output(
            f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 30 -X {method} {body} 'https://{SITE}{path}?t={token}-{method}'"
        )
        assert out == str(status), f"{method} {path}: {out}"
    seen = received(token)
    report(f"retry drill {path}: the backends received {dict(seen)}")
    # An error or a slow answer of the application is final, whatever the
    # method: each request ran on one server only (under load, a degraded
    # tier's 5xx is not multiplied). Retries of connection failures are live:
    # test_a_backend_dying_costs_no_request.
    assert seen["POST"] == 1, seen
    assert seen["GET"] == 1, seen


def test_vip_moves_to_the_backup_when_haproxy_stops_and_preempts_back(host):
    out = "/tmp/vip-loop.jsonl"
    assert has_vip(lb1)
    watch_vip(lb2, "/tmp/vip_at")
    start_loop(host, f"https://{SITE}/", 16, 0.05, out)
    time.sleep(2)
    stopped = float(lb1.check_output("date +%s.%N; systemctl stop haproxy").split()[0])
    vip_at = watched(lb2, "/tmp/vip_at")
    assert vip_at is not None, "the VIP never reached lb2"
    takeover = vip_at - stopped
    time.sleep(2)
    assert has_vip(lb2) and not has_vip(lb1)
    watch_vip(lb1, "/tmp/vip_back_at")
    started = float(lb1.check_output("date +%s.%N; systemctl start haproxy").split()[0])
    back_at = watched(lb1, "/tmp/vip_back_at")
    results = wait_loop(host, out, 25)
    failed = [r for r in results if not r["ok"]]
    by_lb = collections.Counter(r.get("lb") for r in results if r["ok"])
    report(f"VIP failover (systemctl stop haproxy on lb1): VIP on lb2 {takeover:.2f}s after the stop; "
           f"{len(results)} requests in the loop (one every ~50 ms), {len(failed)} failed; served by {dict(by_lb)}")
    report("preempt on: haproxy started again on lb1, VIP back on lb1 "
           + (f"{back_at - started:.2f}s later (track rise 2 x 1s)" if back_at else "never"))
    for r in failed:
        report(f"  failed request at stop{r['t'] - stopped:+.2f}s / start{r['t'] - started:+.2f}s: {r.get('error')}")
    assert takeover < 3
    # The VIP moves twice (to lb2, back to lb1). Each move resets the
    # connections in flight on the node it leaves (the other node has no
    # state for them): at most one request each with one every 50 ms, as
    # measured (0 to 2 of 280; CI 2026-11-30: one at the stop, one at the
    # preemption back). More than that would mean a gap, not a reset.
    assert len(failed) <= 2, failed
    # Lost with its connection: reset by the node that now holds the VIP, or
    # timed out when the leaving node can no longer answer from it.
    assert all(any(w in str(r.get("error", "")).lower() for w in ("reset", "timed out")) for r in failed), failed
    assert back_at is not None, "with preempt on, lb1 (priority 150) takes the VIP back"
    time.sleep(1)
    assert not has_vip(lb2)
    assert {"lbs-lb1", "lbs-lb2"} <= set(by_lb)


def test_without_preempt_the_backup_keeps_the_vip(tmp):
    rc, out = run_play({"keepalived_preempt": False}, ["keepalived"], tmp, hosts="loadbalancers")
    assert rc == 0, out[-2000:]
    assert lb1.file("/etc/keepalived/keepalived.conf").contains("^ *nopreempt$")
    try:
        assert has_vip(lb1)
        watch_vip(lb2, "/tmp/vip_np_at")
        lb1.check_output("systemctl stop haproxy")
        assert watched(lb2, "/tmp/vip_np_at") is not None
        lb1.check_output("systemctl start haproxy")
        time.sleep(8)  # well past track rise (2 x 1 s): a preempting lb1 would have taken it
        report("nopreempt: after haproxy came back on lb1 the VIP stayed on lb2 for 8 s")
        assert has_vip(lb2) and not has_vip(lb1)
    finally:
        lb1.run("systemctl start haproxy")
        rc, out = run_play({}, ["keepalived"], tmp, hosts="loadbalancers")
        assert rc == 0, out[-2000:]
    # Preemption back on: the higher priority takes the VIP again.
    deadline = time.time() + 10
    while not has_vip(lb1) and time.time() < deadline:
        time.sleep(0.5)
    assert has_vip(lb1) and not has_vip(lb2)


# ---------------------------------------------------------------- bad input


def run_play(extra_vars, roles, tmp, hosts="lbs-lb1"):
    play = tmp / "play.yml"
    play.write_text(f"- hosts: {hosts}\n  roles: {json.dumps(roles)}\n")
    extra = tmp / "extra.json"
    extra.write_text(json.dumps(extra_vars))
    result = molecule.playbook(play, "-e", f"@{extra}")
    return result.returncode, result.output


@pytest.fixture
def tmp(tmp_path_factory):
    return pathlib.Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))


def test_invalid_acl_fails_with_haproxys_message_and_old_config_keeps_serving(host, tmp):
    before = lb1.check_output("md5sum /etc/haproxy/haproxy.cfg")
    bad = {"haproxy_routes": [{"name": "broken", "match": "path_reg", "values": ["(["], "backend": "site"}]}
    rc, out = run_play(bad, ["haproxy"], tmp)
    assert rc != 0
    # HAProxy's own words, from haproxy -c on the candidate file.
    assert "parsing [" in out and "broken" in out, out[-3000:]
    report("invalid ACL: " + next(line.strip() for line in out.splitlines() if "parsing [" in line)[:300])
    assert lb1.check_output("md5sum /etc/haproxy/haproxy.cfg") == before
    assert lb1.service("haproxy").is_running
    assert len(fetch(host, "/", 10)) == 10


def test_unknown_balance_algorithm_fails_argument_validation(tmp):
    bad = {"haproxy_backends": [{"name": "x", "balance": "fastest", "servers": [{"name": "a", "address": "10.0.0.1"}]}]}
    rc, out = run_play(bad, ["haproxy"], tmp)
    assert rc != 0
    assert "Validation of arguments failed" in out
    assert "haproxy_backends" in out and "fastest" in out, out[-2000:]


def test_an_address_no_interface_carries_is_named_before_any_change(tmp):
    rc, out = run_play({"keepalived_address": "10.213.99.11"}, ["keepalived"], tmp)
    assert rc != 0
    assert "keepalived_address: no interface of lbs-lb1 carries 10.213.99.11" in " ".join(out.split()), out[-2000:]
    assert "changed=0" in out


def test_vip_that_is_not_an_ip_fails_validation(tmp):
    rc, out = run_play({"keepalived_vip": "www.example.test"}, ["keepalived"], tmp)
    assert rc != 0
    assert "keepalived_vip: 'www.example.test' is not an IP address" in out
    assert "changed=0" in out


def test_keepalived_refusal_shows_its_words_and_keeps_the_running_config(tmp):
    before = lb1.check_output("md5sum /etc/keepalived/keepalived.conf")
    rc, out = run_play({"keepalived_virtual_router_id": 300}, ["keepalived"], tmp)
    assert rc != 0
    # keepalived --config-test's own complaint, through the task's rescue.
    assert "outside range [1, 255]" in out, out[-3000:]
    assert lb1.check_output("md5sum /etc/keepalived/keepalived.conf") == before
    assert lb1.service("keepalived").is_running
    assert has_vip(lb1)
