"""The monitoring host on its own, seen through Prometheus' and the
receiver's own interfaces: every target up, every project rule loaded, a rule
fired by a real metric reaches the webhook receiver and its repair resolves
it, and a bad receiver is refused before anything changes."""

import json
import os
import pathlib
import re
import time

import testinfra.utils.ansible_runner
import yaml

from harness.molecule import playbook

INVENTORY_FILE = os.environ["MOLECULE_INVENTORY_FILE"]
ROOT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", pathlib.Path(__file__).resolve().parents[3]))
CONVERGE = pathlib.Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml"
RULES = ROOT / "roles/prometheus/files/rules/wordpress-ha.yml"
RECEIVED = "/var/lib/lab-alert-receiver/notifications.jsonl"
# What the node exporter's textfile collector reads: the file wpha-backup
# writes on a backup host, here under a name of the test's own.
TEXTFILE = "/var/lib/prometheus/node-exporter/molecule-drill.prom"

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY_FILE).get_hosts("all")


def api(host, path):
    return json.loads(host.check_output(f"curl -sS --fail --max-time 5 'http://127.0.0.1:9090/api/v1/{path}'"))["data"]


def wait_until(what, check, timeout, interval=1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)


def notifications(host, since):
    """(arrival, status, alert labels) of every alert in the receiver's file since the epoch second `since`."""
    out = host.run(f"cat {RECEIVED}").stdout
    return [(n["received"], a["status"], a["labels"]) for n in map(json.loads, out.splitlines())
            if n["received"] >= since for a in n["alerts"]]


def write_metric(host, value):
    """The metric a failed (0) or successful (1) backup leaves, written the way wpha-backup does: whole, then moved."""
    host.check_output(f"printf 'wpha_backup_last_run_ok{{backup=\"molecule\"}} {value}\\n' > {TEXTFILE}.tmp && mv {TEXTFILE}.tmp {TEXTFILE}")


def test_every_target_is_scraped_and_up(host):
    def all_up():
        targets = api(host, "targets?state=active")["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None
    targets = wait_until("every target up", all_up, timeout=30)
    assert {t["labels"]["job"] for t in targets} == {"prometheus", "node", "alertmanager"}
    assert {t["labels"]["instance"] for t in targets} == {host.backend.get_hostname()}


def test_every_rule_of_the_project_is_loaded(host):
    expected = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    loaded = {r["name"] for g in api(host, "rules")["groups"] for r in g["rules"] if r["type"] == "alerting"}
    assert loaded == expected
    # Alertmanager answers, and Prometheus sends to it.
    assert api(host, "alertmanagers")["activeAlertmanagers"]


def test_the_pages_an_operator_opens_answer(host):
    # "/" sends a browser to the graph page (/classic/graph in Debian's
    # package, which ships the classic pages only); the alerts page is beside
    # it and lists every rule. The README's tunnel instructions name them.
    graph = host.check_output("curl -sS -o /dev/null -w '%{redirect_url}' http://127.0.0.1:9090/")
    assert graph.endswith("/graph"), graph
    alerts = host.check_output(f"curl -sS --fail {graph.rsplit('/', 1)[0]}/alerts")
    assert "BackupFailed" in alerts and "CertificateExpiringSoon" in alerts
    assert "Alertmanager" in host.check_output("curl -sS --fail http://127.0.0.1:9093/")


def test_a_failed_backup_reaches_the_receiver_and_its_repair_resolves_it(host):
    start = time.time()
    write_metric(host, 0)
    try:
        fired = wait_until("BackupFailed at the receiver", lambda: [
            t for t, s, labels in notifications(host, start)
            if s == "firing" and labels["alertname"] == "BackupFailed" and labels.get("backup") == "molecule"], timeout=60)
        fault_to_notification = fired[0] - start
    finally:
        write_metric(host, 1)
    repaired = time.time()
    resolved = wait_until("BackupFailed resolved at the receiver", lambda: [
        t for t, s, labels in notifications(host, repaired)
        if s == "resolved" and labels["alertname"] == "BackupFailed" and labels.get("backup") == "molecule"], timeout=60)
    print(f"BackupFailed: fault to notification {fault_to_notification:.1f} s, repair to resolved {resolved[0] - repaired:.1f} s")
    # Within a minute, as every alert of the project (here: scrape and evaluation every 2 s, group_wait 1 s).
    assert fault_to_notification < 60
    host.check_output(f"rm -f {TEXTFILE}")


def test_a_receiver_that_is_no_url_is_refused_before_any_change(host):
    before = host.check_output("sha256sum /etc/prometheus/alertmanager.yml")
    proc = playbook(CONVERGE, "-e", '{"alertmanager_webhooks": ["hooks.example.test/alerts"]}')
    out = " ".join(proc.output.split())
    assert proc.returncode != 0
    assert "alertmanager_webhooks: 'hooks.example.test/alerts' is not an http(s) URL. Nothing was changed." in out, out[-2000:]
    assert re.search(r" : ok=\d+ changed=0 ", out), out[-2000:]
    assert host.check_output("sha256sum /etc/prometheus/alertmanager.yml") == before
    assert host.check_output("systemctl is-active prometheus-alertmanager prometheus").split() == ["active", "active"]
