"""The page cache for anonymous visitors (Varnish on the balancers), from a
visitor's side: what it keeps, what it must never keep, how fast a new post
shows, and what visitors get while no web host answers.

X-Cache says how a request was served: HIT, HIT-STALE, MISS, PASS (Varnish)
or BYPASS (HAProxy did not send it to the cache)."""

import contextlib
import time

import pytest

from conftest import report


def fetch(lab, client, url, *curl_args):
    """One GET as the client makes it: (status, X-Cache, body)."""
    out = lab.sh(client, f"curl -sS -i --max-time 20 {' '.join(curl_args)} '{url}'").stdout
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    status = lines[0].split()[1]
    headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
    return status, headers.get("x-cache", ""), body


def served_by_web_hosts(lab, marker):
    """How many times the web hosts' access logs show a request for marker."""
    count = 0
    for web in lab.hosts("webservers"):
        out = lab.sh(web, f"grep -h -c -F -- '{marker}' /var/log/apache2/*access.log || true").stdout
        count += sum(int(n) for n in out.split())
    return count


def cache_bound(lab):
    """Seconds within which a change reaches visitors: freshness plus grace."""
    lb = lab.hostvars[lab.hosts("loadbalancers")[0]]
    return int(lb.get("varnish_ttl", 30)) + int(lb.get("varnish_grace", 10))


def test_an_anonymous_repeat_is_served_from_the_cache(lab, client, site_url):
    url, _ = site_url
    marker = f"?e2e-cache-{time.time_ns()}"
    first, second, third = (fetch(lab, client, url + marker) for _ in range(3))
    assert (first[0], first[1]) == ("200", "MISS"), first[:2]
    assert (second[0], second[1]) == ("200", "HIT") and (third[0], third[1]) == ("200", "HIT"), (second[:2], third[:2])
    assert second[2] == first[2]
    # One request reached a web host; the other two never left the balancer.
    assert served_by_web_hosts(lab, marker.lstrip("?")) == 1


def test_a_logged_in_users_page_never_reaches_a_visitor(lab, client, site_url):
    url, _ = site_url
    web = lab.hosts("webservers")[0]
    user = lab.hostvars[web].get("wordpress_admin_user", "admin")
    jar = f"/tmp/e2e-cache-jar-{time.time_ns()}"
    # Log in as a browser would (the form's test cookie first).
    lab.sh(client, f"curl -sS -o /dev/null -c {jar} '{url}wp-login.php'")
    lab.sh(client, f"curl -sS -o /dev/null -b {jar} -c {jar} --data-urlencode 'log={user}' "
                   f"--data-urlencode 'pwd={lab.secret('wordpress_admin_password')}' -d testcookie=1 '{url}wp-login.php'")
    try:
        # Logged in first: the page has the admin bar and bypasses the cache...
        marker = f"?e2e-personal-{time.time_ns()}"
        mine = fetch(lab, client, url + marker, "-b", jar)
        assert mine[0] == "200" and mine[1] == "BYPASS" and 'id="wpadminbar"' in mine[2], mine[:2]
        # ...so a visitor asking for the same URL gets their own, anonymous page.
        theirs = [fetch(lab, client, url + marker) for _ in range(2)]
        assert [t[1] for t in theirs] == ["MISS", "HIT"], [t[:2] for t in theirs]
        assert all('id="wpadminbar"' not in t[2] for t in theirs)
        # And a page cached for visitors is not what the logged-in user gets.
        again = fetch(lab, client, url + marker, "-b", jar)
        assert again[1] == "BYPASS" and 'id="wpadminbar"' in again[2], again[:2]
    finally:
        lab.sh(client, f"rm -f {jar}")


def test_a_response_that_sets_a_cookie_is_never_cached(lab, client, site_url):
    url, _ = site_url
    webs = lab.hosts("webservers")
    scripts = {
        "wpha-e2e-cookie.php": '<?php setcookie("wpha_e2e", "1"); echo bin2hex(random_bytes(8));',
        "wpha-e2e-plain.php": '<?php echo bin2hex(random_bytes(8));',  # the control: cached
    }
    for web in webs:
        for name, code in scripts.items():
            lab.sh(web, f"cat > {lab.site_root(web)}/{name} <<'EOF'\n{code}\nEOF")
    try:
        path = f"{url}wpha-e2e-cookie.php?e2e-{time.time_ns()}"
        with_cookie = [fetch(lab, client, path) for _ in range(3)]
        assert all(r[0] == "200" and r[1] in ("MISS", "PASS") for r in with_cookie), [r[:2] for r in with_cookie]
        assert len({r[2] for r in with_cookie}) == 3, "a response that sets a cookie was served twice"
        path = f"{url}wpha-e2e-plain.php?e2e-{time.time_ns()}"
        plain = [fetch(lab, client, path) for _ in range(3)]
        assert [r[1] for r in plain] == ["MISS", "HIT", "HIT"] and len({r[2] for r in plain}) == 1, [r[:2] for r in plain]
    finally:
        for web in webs:
            lab.sh(web, f"rm -f {' '.join(lab.site_root(web) + '/' + name for name in scripts)}")


def seen_within(lab, what, check, limit, since):
    """Poll check() every 0.1 s for up to limit + 3 s; the seconds from since (monotonic) until it held."""
    lab.wait_until(what, check, timeout=limit + 3, interval=0.1)
    return round(time.monotonic() - since, 2)


def test_a_change_of_a_post_reaches_visitors_at_once(lab, client, site_url):
    """Published, updated, trashed: WordPress invalidates the pages the post
    is on in every balancer's cache (BAN by tag), so each change reaches
    visitors through the VIP within 2 s, although the pages were cached."""
    url, _ = site_url
    limit = 2.0
    stamp = int(time.time())
    figures = {}
    assert fetch(lab, client, url)[0] == "200"
    assert fetch(lab, client, url)[1] in ("HIT", "HIT-STALE")  # the front page is in the cache

    title = f"e2e purge {stamp}"
    post = lab.wp_publish(client, url, title)
    changed = time.monotonic()
    assert post.get("status") == "publish", post
    figures["publish_to_front_page_s"] = seen_within(
        lab, "the new post on the front page", lambda: title in fetch(lab, client, url)[2], limit, changed)
    link = post["link"]
    assert fetch(lab, client, link)[0] == "200"
    assert fetch(lab, client, link)[1] in ("HIT", "HIT-STALE")  # its own page is cached too

    updated = lab.wp_publish(client, url, f"{title} updated", "--update", post["id"])
    changed = time.monotonic()
    assert updated.get("status") == "publish", updated
    figures["update_to_post_page_s"] = seen_within(
        lab, "the new title on the post's page", lambda: f"{title} updated" in fetch(lab, client, link)[2], limit, changed)
    figures["update_to_front_page_s"] = seen_within(
        lab, "the new title on the front page", lambda: f"{title} updated" in fetch(lab, client, url)[2], limit, changed)

    trashed = lab.wp_publish(client, url, title, "--trash", post["id"])
    changed = time.monotonic()
    assert trashed.get("status") == "trash", trashed
    figures["trash_to_post_page_gone_s"] = seen_within(
        lab, "the post's page gone", lambda: fetch(lab, client, link)[0] == "404", limit, changed)
    figures["trash_to_front_page_s"] = seen_within(
        lab, "the post off the front page", lambda: title not in fetch(lab, client, url)[2], limit, changed)
    report("page_cache_purge", figures)
    assert all(seconds <= limit for seconds in figures.values()), figures
    # Grace never brings the trashed page back.
    time.sleep(1)
    assert fetch(lab, client, link)[0] == "404"


@pytest.mark.only_on("lab", "the same timer unit and WordPress code on Debian 12, whose PHP serves every other test")
def test_a_post_scheduled_a_minute_ahead_reaches_visitors_on_time(lab, client, site_url):
    """No page load runs WordPress's due events (nothing asks for wp-cron.php):
    the timer on the web hosts publishes a post scheduled a minute ahead (the
    shortest WordPress schedules) within one timer interval (10 s) of its time,
    plus 3 s for the run itself and the ban, never before, and the cached
    front page shows it at once."""
    url, _ = site_url
    interval = int(lab.hostvars[lab.hosts("webservers")[0]].get("wordpress_cron_interval", 10))
    title = f"e2e scheduled {int(time.time())}"
    assert fetch(lab, client, url)[0] == "200"
    scheduled = lab.wp_publish(client, url, title, "--in", 61)
    due = time.monotonic() + 61
    assert scheduled.get("status") == "future", scheduled
    assert fetch(lab, client, url)[1] in ("HIT", "HIT-STALE", "MISS")
    while time.monotonic() < due - 1.5:
        assert title not in fetch(lab, client, url)[2], "a scheduled post was published early"
        time.sleep(2)
    lab.wait_until("the scheduled post on the front page", lambda: title in fetch(lab, client, url)[2],
                   timeout=due + interval + 6 - time.monotonic(), interval=0.2)
    seen = round(time.monotonic() - due, 2)
    report("scheduled_post", {"seen_after_its_time_s": seen, "timer_interval_s": interval})
    assert -1.5 <= seen <= interval + 3, seen
    hits = served_by_web_hosts(lab, "wp-cron.php")
    assert hits == 0, f"{hits} requests for wp-cron.php: page loads still spawn WordPress's cron"


def test_a_port_in_host_neither_splits_the_cache_nor_reaches_php(lab, client, site_url):
    """A post's own page (tag post-ID), not a list page: any change anywhere
    on the site, such as the previous test's scheduled post whose second BAN
    comes a second after it appeared, invalidates every list page, and a
    MISS would then say nothing about the Host header. The post's own second
    BAN is waited out first."""
    url, _ = site_url
    marker = f"e2e-port-{time.time_ns()}"
    link = lab.wp_publish(client, url, f"e2e port {marker}")["link"]
    time.sleep(2)
    page = f"{link}{'&' if '?' in link else '?'}{marker}"
    assert fetch(lab, client, page)[:2] == ("200", "MISS")
    answers = [fetch(lab, client, page, "-H", f"'Host: {lab.site}:{port}'")[:2] for port in (1111, 2222, 8443)]
    assert answers == [("200", "HIT")] * 3, answers
    assert served_by_web_hosts(lab, marker) == 1


@contextlib.contextmanager
def web_tier_stopped(lab):
    webs = lab.hosts("webservers")
    for web in webs:
        lab.sh(web, "systemctl stop apache2")
    try:
        yield
    finally:
        for web in webs:
            lab.sh(web, "systemctl start apache2")
        lab.wait_until("the web hosts back in HAProxy", lambda: all(
            status == "200" for status in (fetch(lab, lab.hosts("clients")[0], f"https://{lab.site}/?e2e-back-{n}-{time.time_ns()}",
                                                 "-b", "wordpress_no_cache=1")[0] for n in range(2))), timeout=30, interval=1)


@pytest.mark.fault
@pytest.mark.only_on("vm", "Debian 13's Varnish serves stale pages without a backend in the loadbalancers scenario")
def test_visitors_get_cached_pages_while_every_web_host_is_down(lab, client, site_url):
    url, _ = site_url
    bound = cache_bound(lab)
    # A ban still on its way from a change made just before (WordPress sends
    # it again a second later) would drop the copy this test relies on.
    time.sleep(1.5)
    lab.wait_until("the front page in the cache", lambda: fetch(lab, client, url)[1] in ("HIT", "HIT-STALE"),
                   timeout=10, interval=0.5)
    with web_tier_stopped(lab):
        time.sleep(3)  # HAProxy's checks (2 × 1 s) and the cache's probe see it
        # Past the copy's freshness and grace: only a stale copy can answer.
        start, answers = time.monotonic(), []
        while time.monotonic() - start < bound + 3:
            answers.append(fetch(lab, client, url)[:2])
            time.sleep(1)
        # A page nobody cached has nothing to fall back on: an error, not a wrong page.
        uncached = fetch(lab, client, f"{url}?e2e-never-cached-{time.time_ns()}")[0]
        bypassing = fetch(lab, client, url, "-b", "wordpress_no_cache=1")[0]
    assert all(status == "200" for status, _ in answers), answers
    assert answers[-1][1] == "HIT-STALE", answers
    assert uncached == "503" and bypassing == "503", (uncached, bypassing)
    report("page_cache_web_tier_down", {"requests": len(answers), "answered_200": sum(s == "200" for s, _ in answers),
                                        "stale": sum(c == "HIT-STALE" for _, c in answers)})
