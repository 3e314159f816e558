"""Hostile inputs, tried from outside against the running stack.

Each test sends what an attacker would (a direct connection to an internal
port, a forged forwarding header, a password guessing run, a script dropped
into the uploads, a name the site does not have, a firewall change that would
lock the operator out) and checks what came back."""

import os
import subprocess
import time

import pytest

from conftest import report

FORGED = "203.0.113.66"


def connects_each(lab, source, targets):
    """{name: True when source opens a TCP connection to it within 3 s}, for
    {name: (address, port)}, all tried at once (a dropped port costs the
    whole 3 s)."""
    names = list(targets)
    tries = " ".join(f"(timeout 3 bash -c 'exec 3<>/dev/tcp/{a}/{p}' 2>/dev/null && echo {i}) &"
                     for i, (a, p) in enumerate(targets[n] for n in names))
    out = lab.sh(source, f"{tries} wait", check=False).stdout.split()
    return {name: str(i) in out for i, name in enumerate(names)}


def connects(lab, source, address, port):
    """True when source opens a TCP connection to address:port within 3 s."""
    return connects_each(lab, source, {"it": (address, port)})["it"]


def test_from_a_visitor_the_internal_ports_are_closed_and_from_their_peers_open(lab, client):
    lb, web, db = lab.hosts("loadbalancers")[0], lab.hosts("webservers")[0], lab.hosts("databases")[0]
    closed = {
        "web host's HTTP": (lab.address(web), 80),
        "MariaDB": (lab.address(db), 3306),
        "ProxySQL": (lab.address(web), 6033),
        "ProxySQL admin": (lab.address(web), 6032),
        "HAProxy stats": (lab.address(lb), 8404),
        "HAProxy metrics": (lab.address(lb), 8405),
        "MariaDB metrics": (lab.address(db), 9104),
        "ProxySQL metrics": (lab.address(web), 6070),
    }
    # The site itself stays open to anyone, tried with them.
    outcome = connects_each(lab, client, {**closed, "the site": (lab.vip, 443)})
    assert outcome.pop("the site") is True, outcome
    assert not any(outcome.values()), outcome
    # The hosts that need them get through.
    assert connects(lab, lb, lab.address(web), 80)
    assert connects(lab, web, lab.address(db), 3306)
    assert connects(lab, web, "127.0.0.1", 6032)
    mon = lab.hosts("monitoring")[0]
    assert connects(lab, mon, lab.address(db), 9104) and connects(lab, mon, lab.address(lb), 8405)
    assert connects(lab, mon, lab.address(web), 6070)
    # The stats page from the monitoring network (the control node): it asks for credentials.
    stats = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                            f"http://{lab.address(lb)}:8404/stats"], capture_output=True, text=True, check=False)
    assert stats.stdout == "401", stats
    report("security_internal_ports", {"from_client_connected": outcome, "stats_from_control_node": stats.stdout})


def test_a_forged_forwarding_header_never_becomes_the_visitors_address(lab, client, site_url):
    url, _ = site_url
    marker = f"e2e-forged-{int(time.time())}"
    # Both ways to a web host: through the page cache (a new URL each time,
    # so each is a miss) and past it (WordPress's no-cache cookie).
    for n in range(6):
        cookie = "-b wordpress_no_cache=1" if n % 2 else ""
        lab.sh(client, f"curl -sS -o /dev/null --fail {cookie} -H 'X-Forwarded-For: {FORGED}' -H 'Forwarded: for={FORGED}' "
                       f"-H 'X-Real-IP: {FORGED}' '{url}?{marker}-{n}'")
    lines = []
    for web in lab.hosts("webservers"):
        lines += lab.sh(web, f"grep -h -- '{marker}' /var/log/apache2/*access.log || true").stdout.splitlines()
    assert len(lines) == 6, lines
    # Apache logs (and hands PHP as REMOTE_ADDR) the visitor's own address.
    assert {line.split()[0] for line in lines} == {lab.address(client)}, lines


def test_an_unknown_host_name_gets_421_not_the_site(lab, client):
    def status(args):
        return lab.sh(client, f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 {args}").stdout
    unknown = status(f"-k --resolve unknown.example.test:443:{lab.vip} https://unknown.example.test/")
    by_address = status(f"http://{lab.vip}/")
    assert (unknown, by_address) == ("421", "421")
    assert status(f"https://{lab.site}/") == "200"


def test_password_guessing_is_rate_limited_while_other_pages_answer(lab):
    # From a host of its own, so the other tests' logins are not held back.
    guesser = lab.hosts("dns_root")[0]
    site = f"--resolve {lab.site}:443:{lab.vip} -k https://{lab.site}"

    def status(args):
        return lab.sh(guesser, f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 20 {args}").stdout
    codes = [status(f"-X POST -d log=admin -d pwd=wrong-{n} {site}/wp-login.php") for n in range(30)]
    assert "429" in codes and set(codes) <= {"200", "429"}, codes
    first_refused = codes.index("429")
    assert first_refused <= 21 and set(codes[first_refused:]) == {"429"}, codes
    assert status(f"{site}/") == "200"
    assert status(f"{site}/wp-login.php") == "200"  # reading the form is not guessing
    report("security_login_rate_limit", {"wrong_logins": 30, "answered": codes.count("200"), "refused_429": codes.count("429")})


def test_xmlrpc_is_off(lab, client, site_url):
    url, _ = site_url
    status = lab.sh(client, f"curl -s -o /dev/null -w '%{{http_code}}' -X POST -d '<methodCall/>' '{url}xmlrpc.php'").stdout
    assert status == "403", status


def test_a_script_dropped_into_the_uploads_is_never_run(lab, client, site_url):
    url, _ = site_url
    name = f"e2e-probe-{int(time.time())}.php"
    webs = lab.hosts("webservers")
    for web in webs:
        lab.sh(web, f"echo '<?php echo \"EXECUTED-\" . (6 * 7);' > {lab.site_root(web)}/wp-content/uploads/{name}")
    try:
        for _ in range(4):  # both web hosts answer
            out = lab.sh(client, f"curl -s -w '\\n%{{http_code}}' '{url}wp-content/uploads/{name}'").stdout
            body, status = out.rsplit("\n", 1)
            assert status == "403" and "EXECUTED-42" not in body, out
    finally:
        for web in webs:
            lab.sh(web, f"rm -f {lab.site_root(web)}/wp-content/uploads/{name}")


def test_the_code_is_read_only_to_php_and_the_uploads_writable(lab):
    web = lab.hosts("webservers")[0]
    user = lab.hostvars[web].get("wordpress_php_user", "www-data")

    root = lab.site_root(web)

    def writable(path):
        assert lab.sh(web, f"test -e {root}/{path}", check=False).returncode == 0, f"{root}/{path} is missing"
        return lab.sh(web, f"runuser -u {user} -- test -w {root}/{path}", check=False).returncode == 0
    assert not writable("index.php")
    assert not writable("wp-includes")
    assert not writable("wp-config.php")
    assert writable("wp-content/uploads")


def test_a_firewall_change_that_would_cut_ansible_off_is_refused(lab):
    """Over SSH (the VM-like lab): SSH sources that leave out the control node."""
    if lab.name == "lab" and os.environ.get("LAB_CONNECTION", "docker") != "ssh":
        pytest.skip("the lab reaches its containers through Docker's API, which no firewall rule can cut: "
                    "the VM-like lab (LAB_PROFILE=vm, over SSH) runs this test")
    host = lab.hosts("webservers")[0]
    _, out = lab.playbook("firewall.yml", "--limit", host, "-e", '{"stack_admin_networks": ["192.0.2.0/24"]}', fails=True)
    assert "firewall_ssh_sources (192.0.2.0/24) leaves out" in " ".join(out.split()), out[-2000:]
    # Nothing changed: the same host still answers a new connection.
    _, out = lab.playbook("firewall.yml", "--limit", host, "--check")
    assert "unreachable=0" in out and "failed=0" in out
