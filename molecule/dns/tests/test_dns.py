"""The lab's DNS tree, observed from the client (and, for TSIG, the secondary)."""

import base64
import json
import os
import re
import time


from harness.molecule import host, host_fixture, playbook

CONVERGE = os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml")
# Measured figures, kept after the scenario's destroy for the report.
FIGURES = f"/tmp/wpha-dns-figures-{os.environ.get('MOLECULE_DISTRO', 'trixie')}.txt"

ZONE = "example.test"
VIP = "10.213.40.100"
ROOT, TLD, NS1, NS2, RESOLVER = (f"10.213.40.{n}" for n in (41, 42, 43, 44, 45))
# The client's and the resolver's second network: not in allow-recursion.
OUTSIDE_CLIENT, OUTSIDE_RESOLVER = "10.213.41.51", "10.213.41.45"


client = host_fixture("dns-client")
secondary = host_fixture("dns-ns2")


def dig(host, args):
    return host.run(f"dig +time=2 +tries=2 {args}").stdout


def serial(host, server):
    return int(dig(host, f"+short @{server} {ZONE} SOA").split()[2])


def converge_primary(extra_records):
    """Converge the primary alone with extra records in the site's zone."""
    return playbook(CONVERGE, "--limit", "dns-ns1", "-e", json.dumps({"dns_site_records_extra": extra_records}), timeout=240)


def record_figure(line):
    with open(FIGURES, "a", encoding="utf-8") as figures:
        figures.write(line + "\n")


def test_resolver_answers_www_with_the_vip(client):
    assert dig(client, f"+short @{RESOLVER} www.{ZONE}").strip() == VIP
    assert dig(client, f"+short @{RESOLVER} {ZONE}").strip() == VIP


def test_resolver_resolves_the_reverse_zone_through_the_lab_root(client):
    assert dig(client, f"+short @{RESOLVER} -x {VIP}").strip() == f"www.{ZONE}."


def test_trace_walks_root_then_tld_then_authoritative(client):
    out = dig(client, f"-4 +trace +nodnssec @{ROOT} www.{ZONE}")
    # Servers that answered, in order (dig asks the root twice: ". NS", then the name).
    steps = re.findall(r"from (\d+\.\d+\.\d+\.\d+)#53", out)
    steps = [server for i, server in enumerate(steps) if i == 0 or steps[i - 1] != server]
    assert steps[:2] == [ROOT, TLD], out
    assert steps[2:] in ([NS1], [NS2]), out
    assert re.search(r"^\.\s+\d+\s+IN\s+NS\s", out, re.M), out
    assert re.search(r"^test\.\s+\d+\s+IN\s+NS\s", out, re.M), out
    assert re.search(rf"^{ZONE}\.\s+\d+\s+IN\s+NS\s", out, re.M), out
    assert re.search(rf"^www\.{ZONE}\.\s+\d+\s+IN\s+A\s+{VIP}$", out, re.M), out


def test_secondary_answers_authoritatively_with_the_primarys_serial(client):
    out = dig(client, f"+norec @{NS2} www.{ZONE}")
    assert re.search(r"flags:[^;]*\baa\b", out), out
    assert re.search(rf"IN\s+A\s+{VIP}", out), out
    assert serial(client, NS2) == serial(client, NS1)


def test_authoritative_servers_do_not_recurse(client):
    out = dig(client, f"@{NS1} www.{ZONE}.invalid")
    assert "recursion requested but not available" in out, out


def test_recursion_from_outside_allow_recursion_is_refused(client):
    out = dig(client, f"-b {OUTSIDE_CLIENT} @{OUTSIDE_RESOLVER} www.{ZONE}")
    assert "status: REFUSED" in out, out


def test_axfr_from_the_client_is_refused(client):
    out = dig(client, f"@{NS1} {ZONE} AXFR")
    assert "Transfer failed" in out, out
    assert f"www.{ZONE}." not in out


def test_axfr_with_the_key_from_an_unlisted_address_is_refused(client, secondary):
    # The key alone is not enough: only the secondaries' addresses may use it.
    key = base64.b64encode(secondary.file("/etc/bind/named.conf.tsig").content).decode()
    client.check_output(f"umask 077; echo {key} | base64 -d > /tmp/tsig.key")
    out = dig(client, f"-k /tmp/tsig.key @{NS1} {ZONE} AXFR")
    client.run("rm -f /tmp/tsig.key")
    assert "Transfer failed" in out, out


def test_axfr_with_the_key_from_the_secondary_succeeds(secondary):
    out = dig(secondary, f"-k /etc/bind/named.conf.tsig @{NS1} {ZONE} AXFR")
    assert len(re.findall(r"\sIN\s+SOA\s", out)) == 2, out  # AXFR opens and closes with the SOA
    assert re.search(rf"^www\.{ZONE}\.\s+\d+\s+IN\s+A\s+{VIP}$", out, re.M), out
    assert "TSIG" in out and "NOERROR" in out, out


def test_second_converge_kept_the_serials(client):
    # The primary logs every serial it loads; converge and idempotence must
    # have produced exactly one per zone, the one it serves now.
    primary = host("dns-ns1")
    for zone in (ZONE, "40.213.10.in-addr.arpa"):
        log = primary.check_output(f"journalctl -u named --no-pager | grep 'zone {zone}/IN: loaded serial' || true")
        loaded = set(re.findall(r"loaded serial (\d+)", log))
        current = dig(client, f"+short @{NS1} {zone} SOA").split()[2]
        assert loaded == {current}, log


def test_changed_record_reaches_the_secondary_within_5_seconds(client):
    before = serial(client, NS2)
    result = converge_primary([{"name": "added", "type": "A", "value": "10.213.40.77"}])
    assert result.returncode == 0, result.stdout[-3000:]
    converged = time.time()
    # Poll the secondary from the client for at most 10 s.
    found = client.run(
        "for i in $(seq 100); do "
        f"[ \"$(dig +short +time=1 +tries=1 @{NS2} added.{ZONE})\" = 10.213.40.77 ] && "
        "{ date +%s.%N; exit 0; }; sleep 0.1; done; exit 1"
    )
    assert found.rc == 0, "the secondary never served the new record"
    elapsed = float(found.stdout) - converged
    after = serial(client, NS2)
    record_figure(f"NOTIFY propagation primary->secondary: {elapsed:.2f} s; serial {before} -> {after}")
    assert elapsed < 5
    assert after > before


def test_malformed_record_fails_with_named_checkzone_and_old_zone_stays(client):
    before = serial(client, NS1)
    result = converge_primary([
        {"name": "added", "type": "A", "value": "10.213.40.77"},
        {"name": "broken", "type": "A", "value": "10.213.40.300"},
    ])
    assert result.returncode != 0
    output = result.output
    assert "bad dotted quad" in output, output[-3000:]
    message = next(line for line in output.splitlines() if "bad dotted quad" in line)
    record_figure("malformed record: " + message.strip())
    # The running server still serves the zone it had, unchanged.
    assert dig(client, f"+short @{NS1} www.{ZONE}").strip() == VIP
    assert dig(client, f"+short @{NS1} added.{ZONE}").strip() == "10.213.40.77"
    assert "NXDOMAIN" in dig(client, f"@{NS1} broken.{ZONE}")
    assert serial(client, NS1) == before
