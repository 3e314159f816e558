#!/usr/bin/env python3
"""One page load from the lab's client C2, captured at every hop (bin/trace).

With cold caches (ARP on every hop, the resolver's DNS cache, the balancers'
page cache, and a query string no cache has seen, so the page comes from a
web host even if the monitoring's probe of / refilled the cache meanwhile), tcpdump runs on
each interface of C2, of the routers between C2 and the stack, of the
resolver, of the load balancer holding the VIP and of the web hosts; C2 then
loads https://www.<domain>/?trace=<time> once with curl (its TLS keys logged, so the
captures can be decrypted). The captures come back to artifacts/trace/ and
are read with tshark only: every line of the report is a packet tshark
decoded, at the capture point that saw it.

Output: artifacts/trace/report.md, report.html (a sequence diagram drawn
from the same packets), trace.json, and the captures (pcap/*.pcap, keys.log).
Captures are bounded: CAPTURE_SECONDS and CAPTURE_PACKETS per interface.
"""

import argparse
import html
import json
import pathlib
import shutil
import subprocess
import time

from harness import ROOT
from harness.lab import Lab, docker

CAPTURE_SECONDS = 30
CAPTURE_PACKETS = 2000
# Not /tmp: a tmpfs in the lab's containers, which docker cp cannot read.
REMOTE_DIR = "/var/tmp/wpha-trace"
BROADCAST = "ff:ff:ff:ff:ff:ff"

FIELDS = [
    "frame.time_epoch", "eth.src", "eth.dst",
    "arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4", "arp.dst.proto_ipv4",
    "ip.src", "ip.dst", "ip.ttl", "ip.id", "ip.len", "ip.proto",
    "udp.srcport", "udp.dstport",
    "tcp.srcport", "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.fin", "tcp.len",
    "tcp.seq", "tcp.ack", "tcp.seq_raw", "tcp.stream",
    "dns.id", "dns.flags.response", "dns.flags.authoritative", "dns.qry.name", "dns.qry.type",
    "dns.count.answers", "dns.count.auth_rr", "dns.ns", "dns.a",
    "tls.handshake.type", "tls.handshake.extensions_server_name",
    "tls.handshake.extensions.supported_version", "tls.handshake.extensions_alpn_str",
    "http.request.method", "http.request.uri", "http.request.version", "http.host",
    "http.x_forwarded_for", "http.response.code", "http.response.phrase",
    "http2.headers.method", "http2.headers.path", "http2.headers.authority", "http2.headers.status",
]

DNS_TYPES = {"1": "A", "2": "NS", "5": "CNAME", "6": "SOA", "12": "PTR", "28": "AAAA"}
TLS_VERSIONS = {"0x0304": "TLS 1.3", "0x0303": "TLS 1.2"}


def tshark(pcap, keylog=None):
    """Every packet of a capture as a dict of FIELDS (values: lists of strings)."""
    cmd = ["tshark", "-r", str(pcap), "-n", "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
           "-E", "aggregator=|"]
    if keylog:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    # An HTTP message is shown at the frame that completes its headers, not at
    # the last frame of its body.
    cmd += ["-o", "http.desegment_body:FALSE"]
    for field in FIELDS:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    packets = []
    for line in out.splitlines():
        values = line.split("\t")
        packets.append({f: (v.split("|") if v else []) for f, v in zip(FIELDS, values)})
    return packets


def one(packet, field, default=""):
    values = packet.get(field) or []
    return values[0] if values else default


class Trace:
    def __init__(self, lab, client, out):
        self.lab = lab
        self.client = client
        self.out = out
        self.client_ip = lab.address(client)
        self.vip = lab.vip
        self.resolver = lab.hosts("dns_resolvers")[0]
        self.resolver_ip = lab.address(self.resolver)
        self.routers = self.gateway_chain()
        self.lb = next(h for h in lab.hosts("loadbalancers") if lab.vip in lab.sh(h, "ip -4 -o addr show", check=False).stdout)
        self.webs = lab.hosts("webservers")
        # Every interface of every host: MAC -> (host, interface, address).
        self.interfaces = {}
        self.macs = {}
        for host in lab.hostvars:
            for link in json.loads(lab.sh(host, "ip -j addr show").stdout):
                if link["ifname"] == "lo":
                    continue
                address = next((a["local"] for a in link.get("addr_info", []) if a["family"] == "inet"), "")
                self.interfaces.setdefault(host, []).append({"name": link["ifname"], "mac": link["address"], "address": address})
                self.macs[link["address"]] = (host, link["ifname"], address)

    def gateway_chain(self):
        """C2's default gateway, that router's default gateway, and so on: the routers C2's packets cross."""
        chain, host = [], self.client
        while True:
            routes = self.lab.hostvars[host].get("static_routes_list") or []
            via = next((r["via"] for r in routes if r["to"] == "default"), None)
            router = next((h for h in self.lab.hosts("routers") if via and any(
                i["address"] == via for i in self.lab.hostvars[h].get("lab_interfaces", []))), None)
            if not router or router in chain:
                break
            chain.append(router)
            host = router
        return chain

    def capture_points(self):
        lb_ip = self.lab.address(self.lb)
        quiet = "not ip proto 112 and not tcp port 3142"
        points = [(self.client, quiet)] + [(r, quiet) for r in self.routers]
        points.append((self.resolver, "arp or port 53"))
        points.append((self.lb, f"arp or host {self.client_ip} or (tcp port 80 and host {lb_ip})"))
        points += [(web, f"(arp and host {lb_ip}) or (tcp port 80 and host {lb_ip})") for web in self.webs]
        return [(host, iface["name"], flt) for host, flt in points for iface in self.interfaces[host]]

    def run(self):
        started = time.monotonic()
        self.out.mkdir(parents=True, exist_ok=True)
        self.points = self.capture_points()
        # Prometheus' DNS probe asks the resolver every 10 s: when it asks in
        # the moment between the resolver's cache flush and C2's query, the
        # probe's query walks the tree and C2's is answered from the cache
        # (seen in CI, 2026-12-06). The flush comes right before C2's page
        # load, and a capture where C2's query walked nothing is taken again.
        for attempt in range(1, 4):
            self.capture()
            self.steps = self.analyse()
            if self.walked_for_the_client(self.steps):
                break
            print(f"Attempt {attempt}: another client's query refilled the resolver's cache before C2 asked; again.")
        self.attempts = attempt
        self.seconds = round(time.monotonic() - started, 1)
        self.write()

    def capture(self):
        """Cold caches, a capture at every point, one page load from C2."""
        shutil.rmtree(self.out / "pcap", ignore_errors=True)
        (self.out / "pcap").mkdir()
        points = self.points
        hosts = sorted({h for h, _, _ in points})
        # Cold caches: every neighbour table on the path (the resolver's
        # cache is flushed right before the page load).
        for host in hosts:
            self.lab.sh(host, f"rm -rf {REMOTE_DIR}; mkdir -p {REMOTE_DIR}; pkill -x tcpdump; ip neigh flush all", check=False)
        for lb in self.lab.hosts("loadbalancers"):  # the page cache, where there is one
            self.lab.sh(lb, "! command -v varnishadm >/dev/null || varnishadm ban req.url '~' .", check=False)
        for host, iface, flt in points:
            docker("exec", "-d", host, "bash", "-c",
                   f"exec timeout {CAPTURE_SECONDS} tcpdump -i {iface} -n -U -s 0 -c {CAPTURE_PACKETS} "
                   f"-w {REMOTE_DIR}/{iface}.pcap '{flt}' 2>{REMOTE_DIR}/{iface}.err")
        for host, iface, _ in points:
            self.lab.wait_until(f"tcpdump on {host} {iface}", lambda: "listening on" in self.lab.sh(
                host, f"cat {REMOTE_DIR}/{iface}.err", check=False).stdout, timeout=10, interval=0.1)
        # The page load itself, as a visitor on C2 would.
        # A URL of its own: Prometheus' blackbox probe loads / every 10 s
        # through the VIP and may put it back in the page cache after the ban
        # (seen: 2 runs in a row, 2026-12-06); WordPress answers the front page.
        url = self.url = f"https://{self.lab.site}/?trace={time.time_ns()}"
        self.lab.sh(self.resolver, "rndc flush")
        curl = self.lab.sh(self.client, f"SSLKEYLOGFILE={REMOTE_DIR}/keys.log curl -sS -o /dev/null --max-time 20 "
                                        f"-w '%{{json}}' {url}", check=False)
        try:
            self.curl = json.loads(curl.stdout)
        except ValueError:
            raise SystemExit(f"curl on {self.client} failed: {curl.stdout}{curl.stderr}")
        time.sleep(1)
        for host in hosts:
            self.lab.sh(host, "pkill -INT -x tcpdump; sleep 0.3; while pgrep -x tcpdump >/dev/null; do sleep 0.1; done", check=False)
        for host, iface, _ in points:
            docker("cp", f"{host}:{REMOTE_DIR}/{iface}.pcap", str(self.out / "pcap" / f"{host}-{iface}.pcap"))
        docker("cp", f"{self.client}:{REMOTE_DIR}/keys.log", str(self.out / "keys.log"))

    def walked_for_the_client(self, steps):
        """Whether the root's referral came after C2's own query (C2 seen sending it)."""
        query = next((i for i, s in enumerate(steps) if self.asks_the_resolver(s["facts"])
                      and any(hop["at"].split()[0] == self.client for hop in s["hops"])), None)
        return query is not None and any(self.refers(s["facts"], "dns_root") for s in steps[query + 1:])

    def asks_the_resolver(self, f):
        return f["kind"] == "dns-query" and f["name"] == self.lab.site and f["type"] == "A" and f["dst"] == self.resolver_ip

    def refers(self, f, group):
        """A referral from one of the group's name servers."""
        return f["kind"] == "dns-referral" and self.host_of_ip(f["src"]) in self.lab.hosts(group)

    # --- analysis: packets as tshark decoded them ---------------------------

    def name(self, mac):
        if mac == BROADCAST:
            return "broadcast"
        host = self.macs.get(mac)
        return f"{host[0]} {host[1]}" if host else mac

    def owner(self, mac):
        return self.macs.get(mac, (None,))[0]

    def host_of_ip(self, ip):
        if ip == self.vip:
            return f"VIP ({self.lb})"
        for host, vars_ in self.lab.hostvars.items():
            if vars_.get("stack_address") == ip or any(i["address"] == ip for i in vars_.get("lab_interfaces", [])):
                return host
        return ip

    def relevant(self, p, xff_streams):
        if p.get("arp.opcode"):
            return True
        if not p.get("ip.src"):
            return False
        src, dst = one(p, "ip.src"), one(p, "ip.dst")
        if p.get("dns.id"):
            return True
        ports = {one(p, "tcp.srcport"), one(p, "tcp.dstport")}
        if self.client_ip in (src, dst) and self.vip in (src, dst) and "443" in ports:
            return True
        return "80" in ports and (p["_point"], one(p, "tcp.stream")) in xff_streams

    def describe(self, p):
        """(message key, OSI layer, PDU, summary, facts) of a packet, or None
        for packets the report leaves out. The facts (its kind and the fields
        that tell it apart) are what the walk-through looks steps up by; the
        summary is their English for the report."""
        facts = self.facts(p)
        described = self.words(p)
        return described and (*described, facts)

    def facts(self, p):
        """What a packet is, as data: {"kind": ..., and its fields}."""
        if p.get("arp.opcode"):
            kind = "arp-request" if one(p, "arp.opcode") == "1" else "arp-reply"
            return {"kind": kind, "sender": one(p, "arp.src.proto_ipv4"), "target": one(p, "arp.dst.proto_ipv4")}
        src, dst = one(p, "ip.src"), one(p, "ip.dst")
        if p.get("dns.id"):
            facts = {"src": src, "dst": dst, "name": one(p, "dns.qry.name"),
                     "type": DNS_TYPES.get(one(p, "dns.qry.type"), one(p, "dns.qry.type"))}
            if one(p, "dns.flags.response") != "1":
                return {"kind": "dns-query", **facts}
            if int(one(p, "dns.count.answers", "0")) > 0:
                return {"kind": "dns-answer", "authoritative": one(p, "dns.flags.authoritative") == "1", **facts}
            return {"kind": "dns-referral" if p.get("dns.ns") else "dns-nodata", **facts}
        ports = {"src": src, "dst": dst, "sport": one(p, "tcp.srcport"), "dport": one(p, "tcp.dstport")}
        if one(p, "tcp.flags.syn") in ("1", "True"):
            return {"kind": "tcp-synack" if one(p, "tcp.flags.ack") in ("1", "True") else "tcp-syn", **ports}
        types = p.get("tls.handshake.type", [])
        if "1" in types or "2" in types:
            return {"kind": "tls-client-hello" if "1" in types else "tls-server-hello", **ports}
        if p.get("http2.headers.method"):
            return {"kind": "http2-request", **ports}
        if p.get("http2.headers.status"):
            return {"kind": "http2-response", "status": one(p, "http2.headers.status"), **ports}
        if p.get("http.request.method"):
            return {"kind": "http-request", "xff": p.get("http.x_forwarded_for", []), **ports}
        if p.get("http.response.code"):
            return {"kind": "http-response", "status": one(p, "http.response.code"), **ports}
        return {"kind": "other", **ports}

    def words(self, p):
        """(message key, OSI layer, PDU, summary) of a packet, or None."""
        if p.get("arp.opcode"):
            sender, target = one(p, "arp.src.proto_ipv4"), one(p, "arp.dst.proto_ipv4")
            if one(p, "arp.opcode") == "1":
                return (("arp", sender, target, "who-has"), "L2 data link (ARP)", "Ethernet frame",
                        f"ARP request: who has {target}? tell {sender} ({self.name(one(p, 'arp.src.hw_mac'))})")
            return (("arp", sender, target, "is-at"), "L2 data link (ARP)", "Ethernet frame",
                    f"ARP reply: {sender} is at {one(p, 'arp.src.hw_mac')} ({self.name(one(p, 'arp.src.hw_mac'))})")
        ident = (one(p, "ip.src"), one(p, "ip.dst"), one(p, "ip.id"), one(p, "ip.len"), one(p, "tcp.seq_raw"))
        if p.get("dns.id"):
            qname, qtype = one(p, "dns.qry.name"), DNS_TYPES.get(one(p, "dns.qry.type"), one(p, "dns.qry.type"))
            layer, pdu = "L7 application (DNS) over UDP (L4)", "UDP datagram in an IP packet (L3) in an Ethernet frame (L2)"
            if one(p, "dns.flags.response") != "1":
                return (("dns",) + ident, layer, pdu, f"DNS query {qtype} {qname}? to {self.host_of_ip(one(p, 'ip.dst'))}")
            if int(one(p, "dns.count.answers", "0")) > 0:
                kind = "authoritative answer" if one(p, "dns.flags.authoritative") == "1" else "answer"
                # dns.a lists the A records of every section: the answers come first.
                answers = p.get("dns.a", [])[:int(one(p, "dns.count.answers", "0"))]
                return (("dns",) + ident, layer, pdu,
                        f"DNS {kind} from {self.host_of_ip(one(p, 'ip.src'))}: {qname} {qtype} {', '.join(answers) or '(no A)'}")
            if p.get("dns.ns"):
                return (("dns",) + ident, layer, pdu,
                        f"DNS referral from {self.host_of_ip(one(p, 'ip.src'))}: ask {', '.join(sorted(set(p['dns.ns'])))}")
            return (("dns",) + ident, layer, pdu, f"DNS response from {self.host_of_ip(one(p, 'ip.src'))}: {qname} {qtype}: no data")
        if one(p, "tcp.flags.syn") in ("1", "True"):
            what = "SYN, ACK" if one(p, "tcp.flags.ack") in ("1", "True") else "SYN"
            return (("tcp",) + ident, "L4 transport (TCP)", "TCP segment in an IP packet in an Ethernet frame",
                    f"TCP {what} {one(p, 'ip.src')}:{one(p, 'tcp.srcport')} -> {one(p, 'ip.dst')}:{one(p, 'tcp.dstport')}")
        if p.get("tls.handshake.type"):
            types = p["tls.handshake.type"]
            versions = ", ".join(TLS_VERSIONS.get(v, v) for v in p.get("tls.handshake.extensions.supported_version", []))
            if "1" in types:
                return (("tls",) + ident, "L6 presentation (TLS)", "TLS record in a TCP segment",
                        f"TLS ClientHello: SNI {one(p, 'tls.handshake.extensions_server_name')}, versions {versions}, "
                        f"ALPN offered {', '.join(p.get('tls.handshake.extensions_alpn_str', []))}")
            if "2" in types:
                alpn = ", ".join(p.get("tls.handshake.extensions_alpn_str", []))
                return (("tls",) + ident, "L6 presentation (TLS)", "TLS record in a TCP segment",
                        f"TLS ServerHello: {versions}" + (f", ALPN {alpn} (EncryptedExtensions, decrypted)" if alpn else ""))
        http2 = "L7 application (HTTP/2 in TLS, decrypted with C2's key log)", "data in TLS records in TCP segments"
        http1 = "L7 application (HTTP/1.1)", "data in a TCP segment"
        # The first of these fields the packet has says what it is.
        http = [
            ("http2.headers.method", http2, lambda: f"HTTP/2 request {one(p, 'http2.headers.method')} "
                                                    f"{one(p, 'http2.headers.path')} (:authority {one(p, 'http2.headers.authority')})"),
            ("http2.headers.status", http2, lambda: f"HTTP/2 response :status {one(p, 'http2.headers.status')}"),
            ("http.request.method", http1, lambda: f"HTTP request {one(p, 'http.request.method')} {one(p, 'http.request.uri')} "
                                                   f"{one(p, 'http.request.version')}, Host {one(p, 'http.host')}, X-Forwarded-For "
                                                   f"{', '.join(p.get('http.x_forwarded_for', [])) or '(none)'}"),
            ("http.response.code", http1, lambda: f"HTTP response {one(p, 'http.response.code')} {one(p, 'http.response.phrase')}"),
        ]
        for field, (layer, pdu), text in http:
            if p.get(field):
                return ("http",) + ident, layer, pdu, text()
        return None

    def analyse(self):
        keylog = self.out / "keys.log"
        packets = []
        for host, iface, _ in self.points:
            mac = next(i["mac"] for i in self.interfaces[host] if i["name"] == iface)
            for p in tshark(self.out / "pcap" / f"{host}-{iface}.pcap", keylog):
                p["_point"], p["_host"], p["_iface"], p["_mac"] = f"{host}-{iface}", host, iface, mac
                packets.append(p)
        # HAProxy's connections to a web host that carried this client's request.
        xff_streams = {(p["_point"], one(p, "tcp.stream")) for p in packets if self.client_ip in p.get("http.x_forwarded_for", [])}
        steps = {}
        for p in sorted(packets, key=lambda p: float(one(p, "frame.time_epoch"))):
            if not self.relevant(p, xff_streams):
                continue
            described = self.describe(p)
            if not described:
                continue
            key, layer, pdu, summary, facts = described
            step = steps.setdefault(key, {"summary": summary, "facts": facts, "layer": layer, "pdu": pdu, "hops": []})
            sent = one(p, "eth.src") == p["_mac"]
            step["hops"].append({
                "t": float(one(p, "frame.time_epoch")),
                "at": f"{p['_host']} {p['_iface']}",
                "direction": "sent" if sent else "received",
                "eth_src": one(p, "eth.src"), "eth_dst": one(p, "eth.dst"),
                "eth_src_name": self.name(one(p, "eth.src")), "eth_dst_name": self.name(one(p, "eth.dst")),
                "ip_src": one(p, "ip.src") or one(p, "arp.src.proto_ipv4"),
                "ip_dst": one(p, "ip.dst") or one(p, "arp.dst.proto_ipv4"),
                "ttl": int(one(p, "ip.ttl")) if p.get("ip.ttl") else None,
                "xff": p.get("http.x_forwarded_for", []),
            })
        ordered = sorted(steps.values(), key=lambda s: s["hops"][0]["t"])
        start = ordered[0]["hops"][0]["t"] if ordered else 0
        for number, step in enumerate(ordered, 1):
            step["number"] = number
            for hop in step["hops"]:
                hop["ms"] = round((hop["t"] - start) * 1000, 2)
        return ordered

    # --- output ------------------------------------------------------------

    def write(self):
        data = {
            "client": self.client, "client_address": self.client_ip, "routers": self.routers,
            "resolver": self.resolver, "load_balancer": self.lb, "vip": self.vip, "url": self.url,
            "curl": {k: self.curl.get(k) for k in ("response_code", "http_version", "remote_ip", "time_namelookup",
                                                   "time_connect", "time_appconnect", "time_total")},
            "captures": [f"pcap/{h}-{i}.pcap" for h, i, _ in self.points],
            "interfaces": self.interfaces, "seconds": self.seconds, "attempts": self.attempts, "steps": self.steps,
        }
        (self.out / "trace.json").write_text(json.dumps(data, indent=1))
        (self.out / "report.md").write_text(self.markdown(data))
        (self.out / "report.html").write_text(self.html(data))

    def markdown(self, data):
        path = " -> ".join([self.client] + self.routers + [f"{self.lb} (VIP {self.vip})"])
        lines = [
            f"# One page load from {self.client}, hop by hop",
            "",
            f"`curl {data['url']}` on {self.client} ({self.client_ip}): HTTP {self.curl.get('http_version')} "
            f"{self.curl.get('response_code')} from {self.curl.get('remote_ip')} in {self.curl.get('time_total', 0):.3f} s "
            f"(DNS {self.curl.get('time_namelookup', 0):.3f} s, TCP {self.curl.get('time_connect', 0):.3f} s, "
            f"TLS {self.curl.get('time_appconnect', 0):.3f} s). Path: {path}; DNS through {self.resolver} ({self.resolver_ip}).",
            "",
            "Every line below is a packet as tshark decoded it from the captures in `pcap/`, at the capture point",
            "that saw it (*sent* or *received* by that interface). Caches were cold: neighbour tables flushed on every",
            "captured host, the resolver's cache and the balancers' page cache flushed. Frames carry MAC addresses,",
            "which change on every link;",
            "packets carry IP addresses, which stay, and a TTL that each router lowers by one.",
            "",
        ]
        lines += self.walkthrough(data["steps"])
        lines += ["## Every packet", ""]
        for step in data["steps"]:
            lines.append(f"### {step['number']}. {step['summary']}")
            lines.append("")
            lines.append(f"Layer: {step['layer']}; PDU: {step['pdu']}.")
            lines.append("")
            lines.append("| t (ms) | at | | frame: MAC src -> dst | packet: IP src -> dst | TTL |")
            lines.append("| ---: | --- | --- | --- | --- | ---: |")
            for hop in step["hops"]:
                lines.append(f"| {hop['ms']:.2f} | {hop['at']} | {hop['direction']} | {hop['eth_src']} ({hop['eth_src_name']}) -> "
                             f"{hop['eth_dst']} ({hop['eth_dst_name']}) | {hop['ip_src']} -> {hop['ip_dst']} | "
                             f"{'' if hop['ttl'] is None else hop['ttl']} |")
            lines.append("")
        lines.append(f"Captured and analysed in {data['seconds']} s by bin/trace"
                     + (f" ({data['attempts']} captures: another client's query refilled the resolver's cache first)."
                        if data["attempts"] > 1 else "."))
        return "\n".join(lines) + "\n"

    def walkthrough(self, steps):
        """The design's walk-through, each line one step of the report below."""
        gateway = self.lab.hostvars[self.client]["static_routes_list"]
        gateway = next(r["via"] for r in gateway if r["to"] == "default")
        site = self.lab.site

        def answer(f):
            return f["kind"] == "dns-answer" and f["name"] == site and f["type"] == "A"

        # Each step by what its packet is (its facts), not by the words the
        # report says it in.
        wanted = [
            ("ARP for the gateway", lambda f: f["kind"] == "arp-request" and f["target"] == gateway),
            ("its answer", lambda f: f["kind"] == "arp-reply" and f["sender"] == gateway),
            ("DNS query to the resolver", self.asks_the_resolver),
            ("the root refers", lambda f: self.refers(f, "dns_root")),
            ("the TLD refers", lambda f: self.refers(f, "dns_tld")),
            ("the zone answers", lambda f: answer(f) and f["authoritative"]),
            ("the answer back to the client", lambda f: answer(f) and not f["authoritative"] and f["src"] == self.resolver_ip),
            ("TCP handshake to the VIP", lambda f: f["kind"] == "tcp-syn" and f["src"] == self.client_ip),
            ("", lambda f: f["kind"] == "tcp-synack" and f["src"] == self.vip and f["sport"] == "443"),
            ("TLS", lambda f: f["kind"] == "tls-client-hello"),
            ("", lambda f: f["kind"] == "tls-server-hello"),
            ("the HTTP request", lambda f: f["kind"] == "http2-request"
             or (f["kind"] == "http-request" and self.client_ip not in f["xff"])),
            ("HAProxy's own connection to a web host", lambda f: f["kind"] == "tcp-syn" and f["src"] == self.lab.address(self.lb)),
            ("", lambda f: f["kind"] == "http-request" and self.client_ip in f["xff"]),
            ("the web host answers", lambda f: f["kind"] == "http-response" and f["status"] == "200"),
            ("200 OK back along the path", lambda f: f["kind"] == "http2-response"),
        ]
        lines = ["## The walk-through", "",
                 "| # | step | layer; PDU | links crossed: sender -> receiver (TTL on that link) |", "| ---: | --- | --- | --- |"]
        # In order: each step after the one before it. The resolver also
        # answers Prometheus' DNS probe, whose walk of the tree may come first.
        position = 0
        for title, match in wanted:
            index = next((i for i, s in enumerate(steps) if i >= position and match(s["facts"])), None)
            step = None if index is None else steps[index]
            if step:
                position = index + 1
            if not step:
                lines.append(f"| | {title}: not seen in the captures | | |")
                continue
            links, seen = [], set()
            for hop in step["hops"]:
                src, dst = self.owner(hop["eth_src"]), ("broadcast" if hop["eth_dst"] == BROADCAST else self.owner(hop["eth_dst"]))
                if (src, dst) in seen:
                    continue
                seen.add((src, dst))
                links.append(f"{src} -> {dst}" + ("" if hop["ttl"] is None else f" ({hop['ttl']})"))
            text = f"{title}: {step['summary']}" if title else step["summary"]
            lines.append(f"| {step['number']} | {text} | {step['layer']}; {step['pdu']} | {', '.join(links)} |")
        return lines + [""]

    def html(self, data):
        """A sequence diagram: one lifeline per host, one arrow per frame sent on a link."""
        order = [self.client] + self.routers + [self.resolver] + self.lab.hosts("dns_root") + self.lab.hosts("dns_tld") \
            + self.lab.hosts("dns_authoritative") + [self.lb] + self.webs
        arrows = []
        for step in data["steps"]:
            seen = set()
            for hop in step["hops"]:
                src, dst = self.owner(hop["eth_src"]), self.owner(hop["eth_dst"])
                if hop["eth_dst"] == BROADCAST:
                    dst = "broadcast"
                if not src or (src, dst) in seen:
                    continue
                seen.add((src, dst))
                label = f"{step['number']}. {step['summary'][:70]}" + (f" [TTL {hop['ttl']}]" if hop["ttl"] is not None else "")
                arrows.append((src, dst, label, step["layer"]))
        used = [h for h in order if any(h in (a[0], a[1]) for a in arrows)]
        used += sorted({h for a in arrows for h in a[:2] if h not in used and h != "broadcast"})
        x = {h: 90 + 150 * i for i, h in enumerate(used)}
        width, top, row = 150 * len(used) + 60, 60, 26
        height = top + row * (len(arrows) + 1) + 20
        colours = {"L2": "#7a7a7a", "L4": "#1f77b4", "L6": "#9467bd", "L7": "#2ca02c"}
        svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="Helvetica" font-size="11">']
        for h in used:
            svg.append(f'<text x="{x[h]}" y="30" text-anchor="middle" font-weight="bold">{html.escape(h)}</text>')
            svg.append(f'<line x1="{x[h]}" y1="40" x2="{x[h]}" y2="{height - 10}" stroke="#cccccc"/>')
        for n, (src, dst, label, layer) in enumerate(arrows):
            y = top + row * (n + 1)
            colour = colours.get(layer[:2], "#333333")
            if dst == "broadcast":
                x2 = x[src] + 110
                svg.append(f'<line x1="{x[src]}" y1="{y}" x2="{x2}" y2="{y}" stroke="{colour}" stroke-dasharray="4 3"/>')
                svg.append(f'<text x="{x[src] + 4}" y="{y - 4}" fill="{colour}">{html.escape(label)} (broadcast)</text>')
                continue
            x1, x2 = x[src], x.get(dst, x[src] + 110)
            head = -6 if x2 > x1 else 6
            svg.append(f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{colour}" stroke-width="1.5"/>')
            svg.append(f'<polygon points="{x2},{y} {x2 + head},{y - 4} {x2 + head},{y + 4}" fill="{colour}"/>')
            svg.append(f'<text x="{min(x1, x2) + 4}" y="{y - 4}" fill="{colour}">{html.escape(label)}</text>')
        svg.append("</svg>")
        body = "\n".join(svg)
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Page load from {html.escape(self.client)}</title></head>"
                f"<body style='font-family:Helvetica'><h1>One page load from {html.escape(self.client)}, hop by hop</h1>"
                f"<p>Drawn from the captures in pcap/ (tshark). Colours: grey L2 frames (ARP), blue L4 TCP segments, "
                f"purple L6 TLS records, green L7 data (DNS, HTTP). Details per packet: report.md.</p>{body}</body></html>\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", help="the client host (default: the clients host with its own default route)")
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "trace"))
    args = parser.parse_args()
    lab = Lab()
    if lab.name != "lab":
        raise SystemExit("bin/trace runs on the lab (LAB_PROFILE=lab): only its inventory has the client LAN and routers.")
    client = args.client or next((h for h in lab.hosts("clients") if any(
        r["to"] == "default" for r in lab.hostvars[h].get("static_routes_list") or [])), None)
    if not client:
        raise SystemExit("no client with its own default route in the inventory (inventory/lab: c2).")
    problem = lab.why_not_running()
    if problem:
        raise SystemExit(problem)
    trace = Trace(lab, client, pathlib.Path(args.out))
    trace.run()
    print(f"{len(trace.steps)} steps from {len(trace.points)} captures in {trace.seconds} s: "
          f"{trace.out / 'report.md'}, {trace.out / 'report.html'}")


if __name__ == "__main__":
    main()
