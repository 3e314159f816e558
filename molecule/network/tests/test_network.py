"""The static_routes, router and firewall roles, observed from the hosts on each side."""

import json
import os

from harness.molecule import host_fixture, playbook

CONVERGE = os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml")
CLIENT, ROUTER_LAN, ROUTER_SRV, SERVER = "10.213.20.10", "10.213.20.254", "10.213.21.254", "10.213.21.10"


client = host_fixture("rt-client")
router = host_fixture("rt-router")
server = host_fixture("rt-server")


def converge(limit, extra):
    return playbook(CONVERGE, "--limit", limit, "-e", json.dumps(extra), timeout=240)


def curl(host, url):
    return host.run(f"curl -sS -o /dev/null -w '%{{http_code}}' --connect-timeout 2 {url}")


def test_the_client_reaches_the_server_through_the_router_with_its_own_address(client, server):
    assert curl(client, f"http://{SERVER}:8080/").stdout == "200"
    # No address translation: the server saw the client's own address.
    log = server.check_output("journalctl -u listen-8080 --no-pager -o cat")
    assert f"{CLIENT} - - " in log, log


def test_the_router_forwards_only_what_its_rules_accept(client, server):
    blocked = curl(client, f"http://{SERVER}:8081/")
    # Dropped, not refused: the connection attempt times out at the router.
    assert blocked.rc == 28, blocked  # curl: connect timeout
    assert curl(server, f"http://{SERVER}:8081/").stdout == "200"  # the listener itself is up
    # Nothing opens a connection towards the LAN: only replies come back.
    client.run("systemd-run --unit=listen-9090 python3 -m http.server 9090 --directory /tmp")
    try:
        # Up as soon as the client itself gets an answer.
        assert client.run(f"for i in $(seq 50); do curl -sf -o /dev/null http://{CLIENT}:9090/ && exit 0; sleep 0.1; done; exit 1").rc == 0
        assert curl(server, f"http://{CLIENT}:9090/").rc == 28
    finally:
        client.run("systemctl stop listen-9090")


def test_traceroute_shows_the_router_then_the_server(client):
    out = client.check_output(f"traceroute -n -I -q 1 -w 2 -m 4 {SERVER}")
    hops = [line.split()[1] for line in out.splitlines()[1:]]
    assert hops == [ROUTER_LAN, SERVER], out


def test_routes_come_back_when_the_unit_starts(client):
    assert client.check_output("ip -4 route show default").strip() == f"default via {ROUTER_LAN} dev eth0"
    client.run("ip route del default")
    client.check_output("systemctl restart static-routes")
    assert client.check_output("ip -4 route show default").strip() == f"default via {ROUTER_LAN} dev eth0"
    assert client.service("static-routes").is_enabled


def test_the_forward_filter_is_checked_before_it_is_loaded(client, router):
    before = router.check_output("nft list table inet router")
    result = converge("rt-router", {"router_forward_accept": ["ip daddr 10.213.21.10 tcp dport 8080", "ip daddr nosuchthing"]})
    assert result.returncode != 0, result.output
    assert "router_forward_accept: nft refused the forward filter, nothing was loaded" in result.output, result.output[-3000:]
    assert router.check_output("nft list table inet router") == before
    assert curl(client, f"http://{SERVER}:8080/").stdout == "200"


def test_a_gateway_off_every_connected_network_is_refused(client):
    result = converge("rt-client", {"static_routes_list": [{"to": "default", "via": "10.213.99.1"}]})
    assert result.returncode != 0, result.output
    assert "static_routes_list: gateway 10.213.99.1 is not on a network rt-client is directly connected to" in result.output, \
        result.output[-3000:]
    assert client.check_output("ip -4 route show default").strip() == f"default via {ROUTER_LAN} dev eth0"
    assert "10.213.99.1" not in client.file("/etc/systemd/system/static-routes.service").content_string


def test_a_bad_route_is_named_before_anything_changes(client):
    result = converge("rt-client", {"static_routes_list": [{"to": "10.213.30.0", "via": ROUTER_LAN}]})
    assert result.returncode != 0
    assert "static_routes_list" in result.output and "10.213.30.0" in result.output, result.output[-3000:]


def test_the_servers_firewall_accepts_its_service_only_from_the_lan(client, router, server):
    assert curl(client, f"http://{SERVER}:8080/").stdout == "200"
    # The router's own address is not on the client LAN: dropped by the server.
    assert curl(router, f"http://{SERVER}:8080/").rc == 28
    assert curl(server, "http://127.0.0.1:8080/").stdout == "200"  # loopback passes
    rules = server.check_output("nft list table inet firewall")
    assert "policy drop" in rules and "10.213.20.0/24" in rules, rules


def test_a_bad_firewall_rule_is_refused_and_the_loaded_rules_stay(client, server):
    before = server.check_output("nft list table inet firewall")
    result = converge("rt-server", {"firewall_rules": [{"comment": "bad", "proto": "tcp", "ports": [8080],
                                                        "sources": ["10.213.20.0/33"]}]})
    assert result.returncode != 0
    assert "firewall_rules: nft refused the input filter, nothing was loaded" in result.output, result.output[-3000:]
    assert server.check_output("nft list table inet firewall") == before
    assert curl(client, f"http://{SERVER}:8080/").stdout == "200"


def test_a_rule_without_ports_is_named_before_anything_changes(client, server):
    before = server.check_output("nft list table inet firewall")
    result = converge("rt-server", {"firewall_rules": [{"comment": "web", "proto": "tcp", "ports": [8080], "any_source": True},
                                                       {"comment": "portless", "proto": "tcp", "ports": [], "any_source": True}]})
    assert result.returncode != 0
    assert "firewall_rules: every rule but VRRP needs ports; these have none: portless." in result.output, \
        result.output[-3000:]
    assert server.check_output("nft list table inet firewall") == before
    assert curl(client, f"http://{SERVER}:8080/").stdout == "200"


def test_a_rule_whose_source_list_came_out_empty_is_named_before_anything_changes(client, server):
    """An empty list (computed from a group with no other host, say) must not
    render a rule open to everyone: refused unless the rule says any_source."""
    before = server.check_output("nft list table inet firewall")
    result = converge("rt-server", {"firewall_rules": [
        {"comment": "web", "proto": "tcp", "ports": [8080], "any_source": True},
        {"comment": "sync from the other web hosts", "proto": "tcp", "ports": [22], "sources": []},
        {"comment": "no sources at all", "proto": "tcp", "ports": [8081]},
        {"comment": "VRRP from the other balancers", "proto": "vrrp", "sources": []}]})
    assert result.returncode != 0
    flat = " ".join(result.output.split())
    assert ("firewall_rules: these rules have an empty source list, which would open them to every address: "
            "sync from the other web hosts, no sources at all, VRRP from the other balancers.") in flat, flat[-3000:]
    assert "web," not in flat.split("every address: ")[1].split(".")[0]
    assert server.check_output("nft list table inet firewall") == before
    assert curl(client, f"http://{SERVER}:8080/").stdout == "200"
