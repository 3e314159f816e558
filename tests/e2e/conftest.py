"""End-to-end tests against the running lab (./bin/lab brings it up).

LAB_PROFILE picks the lab as for bin/lab: lab (inventory/lab) or vm
(inventory/vm, the production path: SSH, vault, certificate files). Every
request starts inside the lab: from the client container to the VIP, or
between the lab's own containers. Nothing leaves the machine."""

import json
import os

import pytest

from lablib import ARTIFACTS, Lab

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
