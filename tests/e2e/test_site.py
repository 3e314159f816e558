"""The site as its visitors and its admin see it, through DNS, the VIP and TLS."""

import pathlib
import time

from conftest import report
from harness.lab import docker


def test_www_resolves_through_the_lab_resolver_to_the_vip(lab, client):
    resolver = lab.address(lab.hosts("dns_resolvers")[0])
    answer = lab.sh(client, f"dig +short @{resolver} {lab.site} A").stdout.split()
    assert answer == [lab.vip]
    # The client's own resolver configuration gives the same answer.
    assert lab.sh(client, f"getent hosts {lab.site}").stdout.split()[0] == lab.vip


def test_front_page_over_https_verified_against_the_lab_ca(lab, client, site_url):
    url, _ = site_url
    # curl verifies against the system store, where the lab CA is installed, and nothing else.
    out = lab.sh(client, f"curl -sS --fail --cacert /usr/local/share/ca-certificates/wpha-lab-ca.crt {url}").stdout
    title = lab.hostvars[lab.hosts("webservers")[0]]["stack_site_title"]
    assert f"<title>{title}" in out


def test_plain_http_is_redirected_to_https(lab, client):
    out = lab.sh(client, f"curl -sS -o /dev/null -w '%{{http_code}} %{{redirect_url}}' http://{lab.site}/").stdout
    assert out.startswith("301 https://")


def test_both_web_hosts_serve_and_log_the_real_client_ip(lab, client, site_url):
    url, _ = site_url
    marker = f"/?e2e-ip-{int(time.time())}"
    for _ in range(20):
        # Past the page cache (WordPress's no-cache cookie): each request reaches a web host.
        lab.sh(client, f"curl -sS -o /dev/null --fail -b wordpress_no_cache=1 '{url.rstrip('/')}{marker}'")
    client_ip = lab.address(client)
    for web in lab.hosts("webservers"):
        log = lab.sh(web, f"grep -h -- '{marker}' /var/log/apache2/*access.log || true").stdout.splitlines()
        assert log, f"{web} served none of the 20 requests"
        # The logged address is the visitor's, not the load balancer's.
        assert all(line.split()[0] == client_ip for line in log), log[:3]


def test_admin_publishes_a_post_visible_everywhere_and_on_the_replica(lab, client, site_url):
    url, _ = site_url
    web = lab.hosts("webservers")[0]
    title = f"e2e post {int(time.time())}"
    post = lab.wp_publish(client, url, title)
    assert post.get("status") == "publish", post
    # Its row reached the replica, which serves the visitors' reads.
    replica = next(h for h in lab.hosts("databases") if lab.hostvars[h].get("mariadb_replication_role") == "replica")
    lab.wait_until("the post on the replica", lambda: lab.sh(
        replica, f"mariadb -N -e \"SELECT COUNT(*) FROM wordpress.wp_posts WHERE post_title = '{title}'\""
    ).stdout.strip() == "1", timeout=5, interval=0.2)
    # Visible through the VIP, whichever web host answers: roundrobin spreads
    # these requests, and each web host's log shows it served the post.
    path = "/" + post["link"].split("/", 3)[3]
    for _ in range(6):  # past the page cache, which would answer all but the first
        page = lab.sh(client, f"curl -sS --fail -b wordpress_no_cache=1 '{post['link']}'").stdout
        assert title in page
    for web in lab.hosts("webservers"):
        served = lab.sh(web, f"grep -c -F 'GET {path} ' /var/log/apache2/*access.log").stdout
        assert sum(int(n.rsplit(':', 1)[-1]) for n in served.split()) > 0, f"{web} never served {path}"


REPLICA_DELAY_S = 8  # under ProxySQL's lag bound (10 s): the replicas keep serving while behind


def test_an_author_reads_their_own_post_at_once_while_visitors_read_the_lagging_replica(lab, client, site_url):
    """Read-your-writes: every replica applies what it receives REPLICA_DELAY_S
    late (MASTER_DELAY), within ProxySQL's bound, so each keeps serving
    visitors while behind; the author, logged in, reads from the primary."""
    url, _ = site_url
    web = lab.hosts("webservers")[0]
    replicas = [h for h in lab.hosts("databases") if lab.hostvars[h].get("mariadb_replication_role") == "replica"]
    delay = "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = {}; START SLAVE"
    for replica in replicas:
        lab.sh(replica, f"mariadb -e '{delay.format(REPLICA_DELAY_S)}'")
    try:
        # A replica caught by the replica guard during its brief STOP SLAVE is back within seconds.
        lab.wait_until("every replica online in ProxySQL", lambda: all(
            lab.proxysql_readers(web).get(lab.address(r)) == "ONLINE" for r in replicas), timeout=20)
        title = f"read your own writes {int(time.time())}"
        start = time.monotonic()
        post = lab.wp_publish(client, url, title)
        assert post.get("status") == "publish", post
        # The author, logged in, reads from the primary: the post is in wp-admin at once.
        assert post["seen_in_admin"], post
        # Visitors read from the replicas, which have not applied it yet.
        statuses = [lab.sh(client, f"curl -sS -o /dev/null -w '%{{http_code}}' '{post['link']}'").stdout for _ in range(3)]
        behind_s = round(time.monotonic() - start, 1)
        assert behind_s < REPLICA_DELAY_S, f"publishing took {behind_s} s, longer than the replicas' delay"
        assert statuses == ["404"] * 3, statuses
    finally:
        for replica in replicas:
            lab.sh(replica, f"mariadb -e '{delay.format(0)}'")
    caught_up = time.monotonic()
    lab.wait_until("visitors to see the post", lambda: title in lab.sh(
        client, f"curl -sS '{post['link']}'", check=False).stdout, timeout=30, interval=0.5)
    report("read_your_writes", {"author_saw_it_in_wp_admin": post["seen_in_admin"], "visitor_statuses_while_behind": statuses,
                                "visitors_saw_it_after_catch_up_s": round(time.monotonic() - caught_up, 1)})


def test_an_application_error_is_never_run_again(lab, client, site_url):
    """An answer of the application, a 500 too, is final: HAProxy sends
    neither the POST nor the GET to the other web host (it retries only
    connections that failed: the web-host drills). The rows written count the
    executions."""
    url, _ = site_url
    script = (pathlib.Path(__file__).parent / "post_drill.php").read_text()
    primary = next(h for h in lab.hosts("databases") if lab.hostvars[h].get("mariadb_replication_role") == "primary")
    token = f"retry-{int(time.time())}"
    drops = []
    try:
        for web in lab.hosts("webservers"):
            drops.append((web, f"{lab.site_root(web)}/wpha-e2e-drill.php"))
            docker("exec", "-i", web, "bash", "-c", f"cat > {drops[-1][1]}", stdin=script)
        executed = {}
        for method in ("POST", "GET"):
            body = "-d x=1" if method == "POST" else ""
            # Past the page cache: what is measured is HAProxy's retries.
            status = lab.sh(client, f"curl -sS -o /dev/null -w '%{{http_code}}' -b wordpress_no_cache=1 -X {method} {body} "
                                    f"'{url}wpha-e2e-drill.php?t={token}-{method}'").stdout
            assert status == "500", (method, status)
            executed[method] = int(lab.sh(primary, "mariadb -N -e \"SELECT COUNT(*) FROM wordpress.wp_options "
                                                   f"WHERE option_name LIKE 'wpha_e2e_{token}-{method}_%'\"").stdout)
        report("post_not_replayed", executed)
        # (With retry-on all-retryable-errors and without haproxy_retry_idempotent_only,
        # HAProxy sent such a POST 4 times: 1 + retries; the GET was sent 4 times
        # until 2026-12-05, multiplying PHP's work when the tier is degraded.)
        assert executed == {"POST": 1, "GET": 1}, executed
    finally:
        for web, path in drops:
            lab.sh(web, f"rm -f {path}", check=False)
        lab.sh(primary, f"mariadb -e \"DELETE FROM wordpress.wp_options WHERE option_name LIKE 'wpha_e2e_{token}%'\"", check=False)


def test_vrrp_adverts_carry_no_password_and_go_where_the_inventory_says(lab):
    lbs = lab.hosts("loadbalancers")
    master = next(h for h in lbs if lab.vip in lab.sh(h, "ip -4 -o addr show").stdout)
    backup = next(h for h in lbs if h != master)
    adverts = [a for a in lab.python(backup, "vrrp_sniff.py", 3, 10, timeout=30) if a["source"] == lab.address(master)]
    assert len(adverts) >= 2, adverts
    settings = lab.hostvars[master]
    unicast = settings["stack_vrrp_mode"] == "unicast"
    report("vrrp_on_the_wire", {"mode": settings["stack_vrrp_mode"], "advert": adverts[0]})
    for advert in adverts:
        assert advert["destination"] == (lab.address(backup) if unicast else "224.0.0.18"), advert
        assert advert["router_id"] == int(settings["stack_vrrp_router_id"]), advert
        # VRRPv3: no authentication field; nothing secret on the wire.
        assert advert["version"] == 3, advert
        assert advert["length"] == 8 + 4 * advert["addresses"], advert
