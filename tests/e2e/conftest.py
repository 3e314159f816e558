"""End-to-end tests against the running lab (./bin/lab brings it up).

LAB_PROFILE picks the lab as for bin/lab: lab (inventory/lab) or vm
(inventory/vm, the production path: SSH, vault, certificate files). Every
request starts inside the lab: from the client container to the VIP, or
between the lab's own containers. Nothing leaves the machine."""

import json
import os
import time

import pytest

from harness.lab import ARTIFACTS, Lab

# When this session began: after the converge that brought the lab up (in
# ./bin/test, the idempotence converge just before). The no-false-positives
# check (test_monitoring.py) watches the lab from here until the first fault.
SESSION_START = time.time()


def pytest_configure(config):
    config.addinivalue_line("markers", "fault(first=False): the test breaks something on purpose (a drill); runs "
                                       "after the others, first=True before the other drills")
    config.addinivalue_line("markers", "routine: a drill of an operator's routine work on a healthy site (a "
                                       "rolling update, a restart, a rotation), which must break and alert nothing; "
                                       "runs after the tests that break nothing, inside the quiet check's window")
    config.addinivalue_line("markers", "quiet_check: checks that nothing alerted since the lab's converge; runs "
                                       "after the tests that break nothing and before the first fault")
    config.addinivalue_line("markers", "only_on(profile, why): runs on that lab alone (LAB_PROFILE), where the "
                                       "other one adds nothing the suite does not test elsewhere (why says where)")


def run_order(item):
    """0: tests that break nothing; 1: the routine drills, which the quiet
    check then holds to alerting nothing (and whose minutes it would
    otherwise wait out); 2: the quiet check; 3: the drills marked
    fault(first=True), the monitoring drills, which then start from the quiet
    lab the check just saw instead of waiting for the alerts of the drills
    before them to resolve; 4: the other drills."""
    if item.get_closest_marker("routine"):
        return 1
    fault = item.get_closest_marker("fault")
    if fault:
        return 3 if fault.kwargs.get("first") else 4
    return 2 if item.get_closest_marker("quiet_check") else 0


def pytest_collection_modifyitems(config, items):
    """In run_order's groups, each in its files' order (the drills depend on
    it); a test marked only_on another lab is deselected (the suite's hour)."""
    profile = os.environ.get("LAB_PROFILE", "lab")
    other = [item for item in items if (mark := item.get_closest_marker("only_on")) and mark.args[0] != profile]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if item not in other]
    items.sort(key=run_order)


@pytest.fixture(scope="session")
def lab():
    lab = Lab()
    missing = [h for h in lab.hostvars if not lab.running(h)]
    if missing:
        msg = f"lab containers not running: {missing}; bring the lab up with ./bin/lab"
        if os.environ.get("E2E_REQUIRED"):
            pytest.fail(msg)
        pytest.skip(msg)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return lab


@pytest.fixture(scope="session")
def client(lab):
    return lab.hosts("clients")[0]


@pytest.fixture(scope="session")
def site_url(lab, client):
    """https://www... as the client resolves it through the lab's resolver."""
    resolver = lab.address(lab.hosts("dns_resolvers")[0])
    answer = lab.sh(client, f"dig +short @{resolver} {lab.site} A").stdout.split()
    assert answer, f"{lab.site} does not resolve through {resolver}"
    return f"https://{lab.site}/", answer[-1]


def report(name, figures):
    """Keep a drill's figures as an artefact (<name>.json, the last run's;
    every run's, one JSON line each, in figures-<lab profile>.jsonl, so a
    suite that tests both labs keeps both) and show them in the test output."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(figures, indent=2))
    with open(ARTIFACTS / f"figures-{os.environ.get('LAB_PROFILE', 'lab')}.jsonl", "a") as out:
        out.write(json.dumps({"name": name, **figures}) + "\n")
    print(f"\n{name}: {json.dumps({k: v for k, v in figures.items() if k != 'failures'})}")
