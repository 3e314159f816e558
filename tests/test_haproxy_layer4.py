"""The haproxy role's layer-4 listeners (haproxy_tcp_listeners) take only what
exists at layer 4: Ansible's own check of the role's argument spec refuses an
HTTP-only option on a TCP listener by name, before any task runs."""

import json
import subprocess

import pytest
import yaml

from conftest import ROOT, ansible_environ

SPEC = ROOT / "roles" / "haproxy" / "meta" / "argument_specs.yml"
GOOD = {"name": "passthrough", "bind": "443", "balance": "source", "check": "http", "check_port": 8080,
        "persistence": "source", "send_proxy": True,
        "servers": [{"name": "web1", "address": "10.0.0.1", "port": 443, "weight": 2}]}


def validate(tmp_path, listeners):
    """ansible.builtin.validate_argument_spec with the role's spec, on the control node; (rc, output)."""
    playbook = tmp_path / "validate.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "vars": {"spec": "{{ lookup('ansible.builtin.file', '%s') | from_yaml }}" % SPEC},
        "tasks": [{"ansible.builtin.validate_argument_spec": {
            "argument_spec": "{{ {'haproxy_tcp_listeners': spec.argument_specs.main.options.haproxy_tcp_listeners} }}",
            "provided_arguments": {"haproxy_tcp_listeners": listeners}}}],
    }]))
    proc = subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), "-i", "localhost,", str(playbook)],
                          capture_output=True, text=True, env=ansible_environ(), timeout=120)
    return proc.returncode, " ".join((proc.stdout + proc.stderr).split())


def test_a_layer4_listener_with_its_own_options_is_accepted(tmp_path):
    rc, out = validate(tmp_path, [GOOD])
    assert rc == 0, out[-2000:]


@pytest.mark.parametrize("extra, said", [
    ({"cookie_name": "SERVERID"}, "Validation of arguments failed: haproxy_tcp_listeners.cookie_name."),
    ({"health_check_uri": "/health"}, "Validation of arguments failed: haproxy_tcp_listeners.health_check_uri."),
    ({"persistence": "cookie"}, "value of persistence must be one of: none, source, got: cookie found in haproxy_tcp_listeners"),
    ({"check": "httpchk"}, "value of check must be one of: tcp, http, none, got: httpchk found in haproxy_tcp_listeners"),
])
def test_an_http_only_option_on_a_layer4_listener_is_refused_by_name(tmp_path, extra, said):
    rc, out = validate(tmp_path, [dict(GOOD, **extra)])
    assert rc != 0 and said in out, out[-2000:]


def test_a_server_without_a_port_is_refused(tmp_path):
    listener = json.loads(json.dumps(GOOD))
    del listener["servers"][0]["port"]
    rc, out = validate(tmp_path, [listener])
    assert rc != 0 and "missing required arguments: port found in haproxy_tcp_listeners -> servers" in out, out[-2000:]
