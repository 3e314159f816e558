"""Debian's Chromium, headless, driven through its ChromeDriver from this
machine: the browser test's visitor and the monitoring drill's look at
Prometheus' alerts page. Screenshots go to artifacts/e2e/."""

import os
import shutil
import subprocess

from harness.lab import ARTIFACTS

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing():
    """What ./bin/setup installs for it (chromium, chromium-driver, libnss3-tools) and this machine lacks."""
    return [p for p in (CHROMIUM, CHROMEDRIVER, shutil.which("certutil") or "certutil") if not os.path.exists(p)]


def start(tmp_path, ca_cert=None, host_rules=None):
    """A new headless Chromium with a profile of its own under tmp_path,
    trusting ca_cert alone (none: no root at all) and resolving names by
    host_rules (Chromium's --host-resolver-rules) if given."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Chromium reads trusted roots from $HOME/.pki/nssdb: a new one.
    home = tmp_path / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    if ca_cert:
        subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "wpha-lab-ca", "-t", "C,,", "-i", str(ca_cert)], check=True)

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
        "--no-first-run", "--disable-quic", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-extensions", "--disable-features=Translate,OptimizationHints,MediaRouter",
        f"--user-data-dir={tmp_path / 'profile'}",
        *([f"--host-resolver-rules={host_rules}"] if host_rules else []),
    ):
        options.add_argument(arg)
    service = Service(CHROMEDRIVER, env=dict(os.environ, HOME=str(home)), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.implicitly_wait(0)
    return driver


def shot(driver, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
