"""The harness's own parsing (harness/): Ansible's recap, the load tools'
reports, a packet's facts in bin/trace. Real outputs, captured from the lab
(tests/fixtures/), with the faults the bench must count written in."""

import json
import subprocess
import sys
import time

import pytest

from harness import ROOT, recap
from harness.bench import load
from harness.trace import Trace

FIXTURES = ROOT / "tests" / "fixtures"

RECAP = """PLAY RECAP *********************************************************************
\x1b[0;33mdb1.example.test\x1b[0m           : \x1b[0;32mok=50  \x1b[0m \x1b[0;33mchanged=9   \x1b[0m unreachable=0    failed=0    skipped=35   rescued=0    ignored=0
web1.example.test          : ok=30   changed=0    unreachable=0    failed=0    skipped=5    rescued=0    ignored=0
web2.example.test          : ok=29   changed=0    unreachable=0    failed=1    skipped=5    rescued=0    ignored=0
"""


def test_the_recap_counts_every_host_colours_or_not():
    hosts = recap.recap("TASK [x] ***\nok: [web1.example.test]\n" + RECAP)
    assert hosts["db1.example.test"]["changed"] == 9 and hosts["db1.example.test"]["ok"] == 50
    assert hosts["web2.example.test"]["failed"] == 1
    assert len(hosts) == 3 and recap.changed(RECAP) == 9


@pytest.mark.parametrize("text,code,says", [
    (RECAP, 1, ["db1.example.test: changed=9 failed=0 unreachable=0", "web2.example.test: changed=0 failed=1 unreachable=0"]),
    (RECAP.replace("changed=9", "changed=0").replace("failed=1", "failed=0"), 0, []),
    ("PLAY [x] ***\nfatal: [web1]: UNREACHABLE!\n", 1, []),
])
def test_no_change_fails_on_a_change_a_failure_or_a_run_that_never_ended(tmp_path, text, code, says):
    log = tmp_path / "converge.log"
    log.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "harness.recap", str(log), "--no-change"], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == says


def test_a_run_that_ran_nothing_records_nothing(tmp_path):
    log, history = tmp_path / "tasks.log", tmp_path / "converges.jsonl"
    log.write_text("playbook: site.yml\n  play #1 (all): Common  TAGS: []\n")
    subprocess.run([sys.executable, "-m", "harness.recap", str(log), "--record", str(history)], cwd=ROOT, check=True)
    assert not history.exists()


def test_a_recorded_run_has_its_figures(tmp_path):
    log, history = tmp_path / "converge.log", tmp_path / "converges.jsonl"
    log.write_text(RECAP)
    for _ in range(2):
        subprocess.run([sys.executable, "-m", "harness.recap", str(log), "--seconds", "42", "--record", str(history)],
                       cwd=ROOT, check=True)
    runs = [json.loads(line) for line in history.read_text().splitlines()]
    assert len(runs) == 2 and {k: runs[0][k] for k in ("seconds", "changed", "hosts")} == {"seconds": 42, "changed": 9, "hosts": 3}
    assert runs[0]["ended"] <= runs[1]["ended"] <= time.time() and runs[0]["date"].endswith("Z")


def test_wrk_figures_and_every_error_counted():
    out = (FIXTURES / "wrk.txt").read_text()
    assert load.parse("wrk", out) == {"rps": 2309.46, "latency_ms": 63.95, "bad": 0, "timeouts": 0}
    faulty = out.replace("Requests/sec:", "  Socket errors: connect 1, read 2, write 3, timeout 4\n"
                                          "  Non-2xx or 3xx responses: 5\nRequests/sec:")
    assert load.parse("wrk", faulty)["bad"] == 5 and load.parse("wrk", faulty)["timeouts"] == 10


def test_h2load_figures_and_every_error_counted():
    out = (FIXTURES / "h2load.txt").read_text()
    assert load.parse("h2load", out) == {"rps": 3808.0, "latency_ms": 1.02, "bad": 0, "timeouts": 0}
    faulty = out.replace("3808 succeeded, 0 failed, 0 errored, 0 timeout", "3800 succeeded, 3 failed, 4 errored, 1 timeout") \
                .replace("0 4xx, 0 5xx", "2 4xx, 6 5xx")
    assert load.parse("h2load", faulty)["bad"] == 8 and load.parse("h2load", faulty)["timeouts"] == 8


def test_a_report_without_figures_stops_the_bench():
    with pytest.raises(SystemExit, match="wrk printed no figures"):
        load.parse("wrk", "unable to connect to www.example.test:https Connection refused")


@pytest.mark.parametrize("packet,facts", [
    ({"arp.opcode": ["1"], "arp.src.proto_ipv4": ["192.168.70.10"], "arp.dst.proto_ipv4": ["192.168.70.254"]},
     {"kind": "arp-request", "sender": "192.168.70.10", "target": "192.168.70.254"}),
    ({"ip.src": ["10.0.0.5"], "ip.dst": ["10.0.0.9"], "dns.id": ["1"], "dns.flags.response": ["1"], "dns.count.answers": ["0"],
      "dns.ns": ["ns1.test."], "dns.qry.name": ["www.example.test"], "dns.qry.type": ["1"]},
     {"kind": "dns-referral", "src": "10.0.0.5", "dst": "10.0.0.9", "name": "www.example.test", "type": "A"}),
    ({"ip.src": ["10.0.0.5"], "ip.dst": ["10.0.0.9"], "dns.id": ["1"], "dns.flags.response": ["1"], "dns.count.answers": ["1"],
      "dns.flags.authoritative": ["1"], "dns.qry.name": ["www.example.test"], "dns.qry.type": ["1"]},
     {"kind": "dns-answer", "authoritative": True, "src": "10.0.0.5", "dst": "10.0.0.9", "name": "www.example.test", "type": "A"}),
    ({"ip.src": ["10.0.0.1"], "ip.dst": ["10.0.0.2"], "tcp.srcport": ["443"], "tcp.dstport": ["5000"],
      "tcp.flags.syn": ["1"], "tcp.flags.ack": ["1"]},
     {"kind": "tcp-synack", "src": "10.0.0.1", "dst": "10.0.0.2", "sport": "443", "dport": "5000"}),
    ({"ip.src": ["10.0.0.1"], "ip.dst": ["10.0.0.2"], "tcp.srcport": ["5000"], "tcp.dstport": ["80"],
      "http.request.method": ["GET"], "http.x_forwarded_for": ["192.168.70.10"]},
     {"kind": "http-request", "xff": ["192.168.70.10"], "src": "10.0.0.1", "dst": "10.0.0.2", "sport": "5000", "dport": "80"}),
])
def test_the_trace_knows_a_packet_by_its_fields(packet, facts):
    assert Trace.facts(None, packet) == facts
