"""The design's network path: C2 on its LAN, behind R2 then R1, and one page
load traced from the wire by bin/trace.

Every figure here is read from the captures with tshark by the test itself,
not from the report bin/trace writes; the report is checked only for saying
the same. The lab inventory alone has the routers and the client LAN."""

import json
import subprocess
import time

import pytest

from harness.lab import ROOT

pytestmark = pytest.mark.usefixtures("lab")


@pytest.fixture(scope="module")
def path(lab):
    """C2, its gateway chain (r2, then r1) and their addresses, from the inventory."""
    if not lab.hosts("routers"):
        pytest.skip(f"the {lab.name} inventory has no routers: the client LAN is the lab's (inventory/lab)")
    hv = lab.hostvars
    c2 = next(h for h in lab.hosts("clients") if any(r["to"] == "default" for r in hv[h].get("static_routes_list") or []))

    def gateway(host):
        return next(r["via"] for r in hv[host]["static_routes_list"] if r["to"] == "default")

    def router_at(address):
        return next(h for h in lab.hosts("routers") if any(i["address"] == address for i in hv[h]["lab_interfaces"]))

    r2_address = gateway(c2)
    r2 = router_at(r2_address)
    r1_address = gateway(r2)
    r1 = router_at(r1_address)
    return {"c2": c2, "c2_address": lab.address(c2), "r2": r2, "r2_address": r2_address, "r1": r1, "r1_address": r1_address}


def mac_of(lab, host, address):
    """The MAC of the interface that holds address, as the host itself reports it."""
    for link in json.loads(lab.sh(host, "ip -j addr show").stdout):
        if any(a.get("local") == address for a in link.get("addr_info", [])):
            return link["address"]
    raise AssertionError(f"{host} has no interface with {address}")


def test_c2s_only_way_out_is_r2(lab, path):
    routes = lab.sh(path["c2"], "ip -4 route show").stdout.splitlines()
    defaults = [r for r in routes if r.startswith("default")]
    assert len(defaults) == 1 and defaults[0].startswith(f"default via {path['r2_address']} dev "), routes
    # One interface, on the client LAN only.
    addresses = lab.sh(path["c2"], "ip -4 -o addr show scope global").stdout.split()
    assert [a for a in addresses if "/" in a] == [f"{path['c2_address']}/24"], addresses


@pytest.mark.parametrize("target", ["vip", "resolver"])
def test_traceroute_from_c2_passes_r2_then_r1(lab, path, target):
    address = lab.vip if target == "vip" else lab.address(lab.hosts("dns_resolvers")[0])
    # r1 answers from the address it received the probe on: its transit side.
    # One probe per hop; a probe lost on a busy machine gets one more try.
    for _ in range(2):
        out = lab.sh(path["c2"], f"traceroute -n -I -q 1 -w 2 -m 6 {address}", timeout=60).stdout
        hops = [line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1]
        if hops == [path["r2_address"], path["r1_address"], address]:
            break
    assert hops == [path["r2_address"], path["r1_address"], address], out


def tshark(pcap, display_filter, *fields, keylog=None):
    cmd = ["tshark", "-r", str(pcap), "-n", "-Y", display_filter, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
    if keylog:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    cmd += ["-o", "http.desegment_body:FALSE"]  # a response at the frame that ends its headers
    for field in ("frame.time_epoch",) + fields:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [dict(zip(("t",) + fields, line.split("\t"))) for line in out.splitlines()]


@pytest.fixture(scope="module")
def trace(lab, path):
    """Run bin/trace once, as an operator would; its captures, and how long it took."""
    out = ROOT / "artifacts" / "trace"
    start = time.monotonic()
    proc = subprocess.run([str(ROOT / "bin" / "trace")], capture_output=True, text=True, timeout=180, cwd=ROOT)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(f"\nbin/trace: {proc.stdout.strip()} (wall {seconds:.1f} s)")
    def pcap(host):
        """The capture of a host with one interface."""
        (only,) = sorted((out / "pcap").glob(f"{host}-*.pcap"))
        return only
    return {"dir": out, "seconds": seconds, "pcap": pcap, "pcaps": lambda host: sorted((out / "pcap").glob(f"{host}-*.pcap"))}


def test_trace_runs_within_a_minute(trace):
    assert trace["seconds"] < 60, trace["seconds"]
    for name in ("report.md", "report.html", "trace.json"):
        assert (trace["dir"] / name).stat().st_size > 0, name


def test_trace_the_page_load_from_the_wire(lab, path, trace):
    c2, c2_ip = path["c2"], path["c2_address"]
    resolver = lab.hosts("dns_resolvers")[0]
    resolver_ip = lab.address(resolver)
    lb = next(h for h in lab.hosts("loadbalancers") if lab.vip in lab.sh(h, "ip -4 -o addr show").stdout)
    c2_pcap = trace["pcap"](c2)
    keys = trace["dir"] / "keys.log"

    # 1. ARP for the gateway: the reply comes from r2's MAC on the LAN.
    r2_mac = mac_of(lab, path["r2"], path["r2_address"])
    arp = tshark(c2_pcap, f"arp.opcode == 2 && arp.src.proto_ipv4 == {path['r2_address']}", "eth.src", "arp.src.hw_mac")
    assert arp and arp[0]["eth.src"] == r2_mac and arp[0]["arp.src.hw_mac"] == r2_mac, arp

    # 2. C2's query for the site goes to the resolver; the answer comes back with the VIP.
    query = tshark(c2_pcap, f"dns.flags.response == 0 && dns.qry.name == \"{lab.site}\" && ip.dst == {resolver_ip}", "ip.ttl")
    answer = tshark(c2_pcap, f"dns.flags.response == 1 && dns.qry.type == 1 && ip.src == {resolver_ip}", "dns.a", "ip.ttl")
    assert query and answer and answer[0]["dns.a"] == lab.vip, (query, answer)
    assert int(answer[0]["ip.ttl"]) == 64 - 2, answer  # the resolver's reply crossed r1, then r2

    # 3. The resolver walks the lab's tree: root -> test. -> example.test.
    #    Only what follows C2's query: Prometheus' DNS probe also asks the
    #    resolver every few seconds, and may be the first to find its cache
    #    empty (seen in CI, 2026-12-06: a walk 0.5 s before C2's query).
    resolver_pcap = trace["pcap"](resolver)
    after_query = f"frame.time_epoch >= {query[0]['t']}"
    walk = []
    for server, kind in ((lab.hosts("dns_root")[0], "root"), (lab.hosts("dns_tld")[0], "tld")):
        referral = tshark(resolver_pcap, f"dns.flags.response == 1 && ip.src == {lab.address(server)} && dns.count.answers == 0 "
                                         f"&& dns.count.auth_rr > 0 && {after_query}", "dns.ns")
        assert referral, f"no referral from the {kind} server {server}"
        walk.append((float(referral[0]["t"]), kind, referral[0]["dns.ns"]))
    authoritative = [lab.address(h) for h in lab.hosts("dns_authoritative")]
    final = tshark(resolver_pcap, f"dns.flags.response == 1 && dns.flags.authoritative == 1 && dns.a == {lab.vip} "
                                  f"&& ip.src in {{{', '.join(authoritative)}}} && {after_query}", "ip.src")
    assert final, "no authoritative answer with the VIP"
    walk.append((float(final[0]["t"]), "authoritative", final[0]["ip.src"]))
    assert [k for _, k, _ in sorted(walk)] == ["root", "tld", "authoritative"], walk
    assert walk[0][2].startswith(lab.hosts("dns_tld")[0]) and walk[1][2].split(".")[0] in lab.hosts("dns_authoritative"), walk

    # 4. TCP to the VIP: the SYN keeps its addresses on every link while the
    #    MACs change, and each router lowers the TTL by one.
    syn = f"tcp.flags.syn == 1 && tcp.flags.ack == 0 && ip.src == {c2_ip} && ip.dst == {lab.vip} && tcp.dstport == 443"
    at_c2 = tshark(c2_pcap, syn, "ip.ttl", "eth.src", "eth.dst")
    initial_ttl = int(at_c2[0]["ip.ttl"])
    assert at_c2[0]["eth.dst"] == r2_mac, at_c2
    r1_transit_mac = mac_of(lab, path["r1"], path["r1_address"])
    r2_out = [p for pcap in trace["pcaps"](path["r2"]) for p in tshark(pcap, syn, "ip.ttl", "eth.src", "eth.dst")
              if p["eth.dst"] == r1_transit_mac]
    assert r2_out and int(r2_out[0]["ip.ttl"]) == initial_ttl - 1, r2_out
    lb_mac = mac_of(lab, lb, lab.address(lb))
    at_lb = tshark(trace["pcap"](lb), syn, "ip.ttl", "eth.src", "eth.dst")
    r1_stack_mac = mac_of(lab, path["r1"], lab.address(path["r1"]))
    assert at_lb and at_lb[0]["eth.src"] == r1_stack_mac and at_lb[0]["eth.dst"] == lb_mac, at_lb
    assert int(at_lb[0]["ip.ttl"]) == initial_ttl - 2, at_lb  # two routers passed

    # 5. TLS: the ClientHello names the site; decrypted with C2's key log,
    #    the request is GET / and the answer 200.
    hello = tshark(c2_pcap, "tls.handshake.type == 1", "tls.handshake.extensions_server_name")
    assert hello and hello[0]["tls.handshake.extensions_server_name"] == lab.site, hello
    status = tshark(c2_pcap, f"ip.src == {lab.vip} && (http2.headers.status == 200 || http.response.code == 200)", "ip.ttl",
                    keylog=keys)
    assert status and int(status[0]["ip.ttl"]) == 64 - 2, status

    # 6. HAProxy's own connection to a web host carries C2's address in
    #    X-Forwarded-For; no router between them, so the TTL is the balancer's
    #    initial one; the web host answers 200.
    lb_ip = lab.address(lb)
    seen = []
    for web in lab.hosts("webservers"):
        request = tshark(trace["pcap"](web), f"http.request && ip.src == {lb_ip}", "http.x_forwarded_for", "ip.ttl", "tcp.stream")
        for r in request:
            if r["http.x_forwarded_for"] == c2_ip:
                reply = tshark(trace["pcap"](web), f"http.response.code == 200 && tcp.stream == {r['tcp.stream']}")
                seen.append((web, float(r["t"]), int(r["ip.ttl"]), bool(reply)))
    assert len(seen) == 1 and seen[0][2] == initial_ttl and seen[0][3], seen

    # The order of the walk-through.
    order = [float(arp[0]["t"]), float(query[0]["t"]), walk[0][0], walk[2][0], float(answer[0]["t"]), float(at_c2[0]["t"]),
             float(hello[0]["t"]), seen[0][1], float(status[0]["t"])]
    assert order == sorted(order), order

    # The report says the same.
    report = (trace["dir"] / "report.md").read_text()
    for text in (f"ARP reply: {path['r2_address']} is at {r2_mac}", "DNS referral from", f"X-Forwarded-For {c2_ip}",
                 "HTTP response 200", f"TLS ClientHello: SNI {lab.site}"):
        assert text in report, text
