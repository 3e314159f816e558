"""An inventory as Ansible reads it (ansible-inventory --list): every host's
variables and every group's hosts, child groups resolved (proxysql ->
webservers). The lab model (harness.lab) and the host-less wiring tests
(tests/test_wiring.py) read inventories through it."""

import json
import os
import pathlib
import subprocess

from harness import BIN, ROOT


class Inventory:
    def __init__(self, path, env=None):
        self.path = pathlib.Path(path)
        out = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(self.path), "--list"], capture_output=True, text=True,
                             check=True, cwd=ROOT, env=env or dict(os.environ)).stdout
        listing = json.loads(out)
        self.hostvars = listing["_meta"]["hostvars"]
        self.groups = {group: self._members(listing, group) for group in listing if group != "_meta"}

    @classmethod
    def _members(cls, listing, group):
        """A group's hosts with its child groups' hosts, in inventory order."""
        hosts = list(listing.get(group, {}).get("hosts", []))
        for child in listing.get(group, {}).get("children", []):
            hosts += [h for h in cls._members(listing, child) if h not in hosts]
        return hosts

    def hosts(self, group):
        return self.groups.get(group, [])

    def address(self, host):
        return self.hostvars[host]["stack_address"]

    def addresses(self, group):
        return [self.address(h) for h in self.hosts(group)]
