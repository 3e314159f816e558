"""The lab as its inventory describes it, and ways to act on its hosts: the
end-to-end tests (tests/e2e/conftest.py), bin/bench and bin/trace use it."""

import hashlib
import json
import os
import pathlib
import subprocess
import time

import yaml

from harness import BIN, ROOT
from harness.inventory import Inventory

DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
ARTIFACTS = ROOT / "artifacts" / "e2e"
# The stdlib-only scripts Lab.python runs inside the lab's containers.
SCRIPTS = ROOT / "tests" / "e2e"


def docker(*args, check=True, timeout=120, stdin=None):
    proc = subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, input=stdin
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {proc.stdout}{proc.stderr}")
    return proc


def proxysql_package():
    """The ProxySQL package bin/lab uses when PROXYSQL_DEB is not set: scripts/lib.sh decides."""
    return subprocess.run(
        ["bash", "-c", f'source "{ROOT}/scripts/lib.sh"; proxysql_source 2>/dev/null; echo "$PROXYSQL_DEB"'],
        capture_output=True, text=True, check=False,
    ).stdout.strip()


def lab_profile():
    """LAB_PROFILE, LAB_INVENTORY, LAB_STATE and the Ansible settings of the
    lab, as scripts/lib.sh (bin/lab) sets them."""
    out = subprocess.run(
        ["bash", "-c", f'source "{ROOT}/scripts/lib.sh"; lab_profile; env -0'],
        capture_output=True, text=True, check=True,
    ).stdout
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    keys = ("LAB_PROFILE", "LAB_INVENTORY", "LAB_STATE", "LAB_DISTRO",
            "ANSIBLE_VAULT_PASSWORD_FILE", "ANSIBLE_PRIVATE_KEY_FILE", "ANSIBLE_SSH_ARGS", "ANSIBLE_HOST_KEY_CHECKING")
    return {k: env[k] for k in keys if k in env}


class Lab:
    """The lab as the inventory describes it, and ways to act on its hosts."""

    def __init__(self):
        self.profile = lab_profile()
        self.name = self.profile["LAB_PROFILE"]
        self.inventory = pathlib.Path(self.profile["LAB_INVENTORY"])
        self.state = pathlib.Path(self.profile["LAB_STATE"])
        self.env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), **self.profile)
        self.model = Inventory(self.inventory, env=self.env)
        self.hostvars = self.model.hostvars
        self.groups = self.model.groups
        anyhost = next(iter(self.hostvars.values()))
        self.vip = anyhost["stack_vip"]
        self.domain = anyhost["stack_domain"]
        self.site = "www." + self.domain

    def address(self, host):
        return self.model.address(host)

    def hosts(self, group):
        return self.model.hosts(group)

    def secret(self, name):
        """A secret of the stack by its vault name without vault_ (wordpress_admin_password)."""
        if self.name == "lab":
            return (self.state / "secrets" / name).read_text().split()[0]
        if not hasattr(self, "_vault"):
            out = subprocess.run(
                [str(BIN / "ansible-vault"), "view", str(self.inventory / "group_vars/all/vault.yml")],
                capture_output=True, text=True, check=True, cwd=ROOT, env=self.env,
            ).stdout
            self._vault = yaml.safe_load(out)
        return self._vault["vault_" + name]

    def account(self, prefix, secret):
        """A database account named after its password (group_vars/all.yml:
        stack_wordpress_db_user, stack_replication_user, stack_monitor_user)."""
        return f"{prefix}_" + hashlib.sha256(self.secret(secret).encode()).hexdigest()[:8]

    def wordpress_db_user(self):
        """The WordPress database account."""
        return self.account("wordpress", "wordpress_db_password")

    def primary(self):
        """The database that takes writes now (read_only off), whatever the inventory says."""
        writable = [db for db in self.hosts("databases")
                    if self.sh(db, "mariadb -N -B -e 'SELECT @@read_only'", check=False).stdout.strip() == "0"]
        assert len(writable) == 1, f"writable databases: {writable}"
        return writable[0]

    def set_secret(self, name, value):
        """Give a secret a new value where the lab keeps it (the lab: its
        secrets file; the VM-like lab: its vault, re-encrypted), as an
        operator rotating it would; the next playbook run uses it."""
        if self.name == "lab":
            (self.state / "secrets" / name).write_text(value + "\n")
            return
        vault = self.inventory / "group_vars/all/vault.yml"
        vault_cmd = str(BIN / "ansible-vault")
        plain = subprocess.run([vault_cmd, "view", str(vault)], capture_output=True, text=True, check=True,
                               cwd=ROOT, env=self.env).stdout
        lines = [f'vault_{name}: "{value}"' if line.startswith(f"vault_{name}:") else line for line in plain.splitlines()]
        assert lines != plain.splitlines(), f"vault_{name} is not in {vault}"
        staged = self.state / "vault.yml.new"
        staged.write_text("\n".join(lines) + "\n")
        subprocess.run([vault_cmd, "encrypt", str(staged)], capture_output=True, text=True, check=True, cwd=ROOT, env=self.env)
        staged.replace(vault)
        self.__dict__.pop("_vault", None)

    def site_root(self, web):
        """The WordPress tree on a web host, as deployed (/srv/www/<site name>)."""
        found = self.sh(web, "ls -d /srv/www/*/wp-config.php").stdout.split()
        assert len(found) == 1, found
        return found[0].rsplit("/", 1)[0]

    def sh(self, host, command, check=True, timeout=120):
        return docker("exec", host, "bash", "-c", command, check=check, timeout=timeout)

    def python(self, host, script, *args, timeout=300):
        """Run a stdlib-only Python script from tests/e2e inside a container; return its JSON."""
        code = (SCRIPTS / script).read_text()
        proc = docker("exec", "-i", host, "python3", "-", *map(str, args), stdin=code, timeout=timeout, check=False)
        try:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise AssertionError(f"{script} on {host} printed no JSON (exit {proc.returncode}): {proc.stdout}{proc.stderr}")

    def wp_publish(self, client, url, title, *action):
        """Publish a post as the site's admin from a client (wp_publish.py;
        action: --in SECONDS, --update ID or --trash ID); its JSON."""
        user = self.hostvars[self.hosts("webservers")[0]].get("wordpress_admin_user", "admin")
        return self.python(client, "wp_publish.py", url, user, self.secret("wordpress_admin_password"), title, *action)

    def playbook(self, playbook, *args, inventories=(), timeout=900, fails=False):
        """Run one of the project's playbooks against the lab, as an operator would; return (seconds, output).

        With fails=True it must fail instead (a refusal)."""
        sources = ["-i", str(self.inventory)]
        for extra in inventories:
            sources += ["-i", str(extra)]
        start = time.monotonic()
        proc = subprocess.run(
            [str(BIN / "ansible-playbook"), *sources, str(ROOT / "playbooks" / playbook), *args],
            capture_output=True, text=True, timeout=timeout, cwd=ROOT,
            env=dict(self.env, ANSIBLE_FORCE_COLOR="0",
                     PROXYSQL_DEB=os.environ.get("PROXYSQL_DEB") or proxysql_package()),
        )
        seconds = round(time.monotonic() - start, 1)
        (ARTIFACTS / f"playbook-{playbook.removesuffix('.yml')}-{int(time.time())}.log").write_text(proc.stdout + proc.stderr)
        if fails:
            assert proc.returncode != 0, f"{playbook} {' '.join(args)} should have failed:\n{proc.stdout[-3000:]}"
            # A failed task's message may be on stderr.
            return seconds, proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{playbook} {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
        return seconds, proc.stdout

    def proxysql_admin(self, web, query):
        """Rows (lists of columns) of a query on ProxySQL's admin interface on one of its hosts."""
        user = self.hostvars[web].get("proxysql_admin_user", "proxyadmin")
        out = self.sh(web, f"MYSQL_PWD={self.secret('proxysql_admin_password')} mariadb -h 127.0.0.1 -P 6032 -u {user} "
                      f"-N -B -e '{query}'").stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def proxysql_readers(self, web):
        """{server address: status} of ProxySQL's reader hostgroup on one of its hosts, from its runtime."""
        reader = self.hostvars[web].get("proxysql_reader_hostgroup", 20)
        return dict(self.proxysql_admin(web, f"SELECT hostname, status FROM runtime_mysql_servers WHERE hostgroup_id = {reader}"))

    def proxysql_writers(self, web):
        """{server address: status} of ProxySQL's writer hostgroup on one of its hosts, from its runtime."""
        writer = self.hostvars[web].get("proxysql_writer_hostgroup", 10)
        return dict(self.proxysql_admin(web, f"SELECT hostname, status FROM runtime_mysql_servers WHERE hostgroup_id = {writer}"))

    def proxysql_state(self, web):
        """What ProxySQL on a web host thinks of the servers now: its runtime
        servers, the monitor's last read_only and ping results, the pool's
        connection errors (a refusal's diagnosis)."""
        queries = {
            "servers": "SELECT hostgroup_id, hostname, status FROM runtime_mysql_servers ORDER BY hostgroup_id, hostname",
            "read_only_log": "SELECT hostname, time_start_us, read_only, error FROM monitor.mysql_server_read_only_log "
                             "ORDER BY time_start_us DESC LIMIT 6",
            "ping_log": "SELECT hostname, time_start_us, ping_success_time_us, ping_error FROM monitor.mysql_server_ping_log "
                        "ORDER BY time_start_us DESC LIMIT 6",
            "pool": "SELECT hostgroup, srv_host, status, ConnERR, ConnOK FROM stats_mysql_connection_pool",
        }
        return {name: self.proxysql_admin(web, query) for name, query in queries.items()}

    def holds_vip(self, host):
        """True when one of host's addresses is the VIP now."""
        return f" {self.vip}/" in self.sh(host, "ip -4 -o addr show", check=False).stdout

    def vip_holders(self):
        """The balancers whose addresses include the VIP now."""
        return [lb for lb in self.hosts("loadbalancers") if self.holds_vip(lb)]

    def running(self, host):
        proc = docker("inspect", "-f", "{{.State.Running}}", host, check=False)
        return proc.stdout.strip() == "true"

    def not_running(self):
        """The inventory's hosts whose containers are not running; the tools
        refuse to start with this message (why_not_running) when any are."""
        return [h for h in self.hostvars if not self.running(h)]

    def why_not_running(self):
        """None when every host of the lab runs, else what to tell the user."""
        missing = self.not_running()
        return f"lab containers not running: {missing}; bring the lab up with ./bin/lab" if missing else None

    def wait_until(self, what, predicate, timeout=60, interval=0.5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
