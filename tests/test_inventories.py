"""inventory/vm (the VM-like lab, LAB_PROFILE=vm) is production.example with
only names, addresses and secrets changed, plus lab-only groups and files:
so the suite's converge of the VM-like lab is a converge of the example an
operator copies."""

import ipaddress

import pytest
import yaml

LAB_ONLY_GROUPS = {"dns_root", "dns_tld", "clients"}


def load(path):
    return yaml.safe_load(path.read_text()) or {}


def groups(tree, out=None):
    """{group: {host: vars}} of a YAML inventory, children flattened into parents."""
    out = {} if out is None else out
    for name, body in (tree.get("children") or {}).items():
        body = body or {}
        hosts = dict(body.get("hosts") or {})
        groups(body, out)
        for child in body.get("children") or {}:
            hosts.update(out.get(child, {}))
        out[name] = hosts
    return out


def is_address(value):
    """An address or network, or a list of them: what may differ between environments."""
    values = value if isinstance(value, list) else [value]
    try:
        for item in values:
            ipaddress.ip_network(str(item), strict=False)
        return len(values) > 0
    except ValueError:
        return False


def settings(directory):
    """Every group_vars file an inventory adds to the shared defaults, by group/file."""
    return {
        f"{path.parent.name}/{path.name}": path
        for path in sorted((directory / "group_vars").glob("*/*.yml"))
        if not path.is_symlink() and path.name != "vault.yml"
    }


@pytest.fixture(scope="module")
def production(root):
    return root / "inventory" / "production.example"


@pytest.fixture(scope="module")
def vm(root):
    return root / "inventory" / "vm"


def test_same_groups_same_number_of_hosts_same_connection(production, vm):
    prod, lab = load(production / "hosts.yml")["all"], load(vm / "hosts.yml")["all"]
    assert lab["vars"] == prod["vars"], "connection settings (user, become) differ"
    prod_groups, lab_groups = groups(prod), groups(lab)
    assert set(lab_groups) - set(prod_groups) == LAB_ONLY_GROUPS
    lab_only_hosts = {h for g in LAB_ONLY_GROUPS for h in lab_groups[g]}
    for group, hosts in prod_groups.items():
        assert len(set(lab_groups[group]) - lab_only_hosts) == len(hosts), group


def test_every_host_has_its_address_and_only_names_and_addresses_differ(production, vm):
    prod_groups, lab_groups = groups(load(production / "hosts.yml")["all"]), groups(load(vm / "hosts.yml")["all"])
    lab_only_hosts = {h for g in LAB_ONLY_GROUPS for h in lab_groups[g]}
    for group, hosts in prod_groups.items():
        lab_hosts = {h: v for h, v in lab_groups[group].items() if h not in lab_only_hosts}
        for (prod_host, prod_vars), (lab_host, lab_vars) in zip(hosts.items(), lab_hosts.items()):
            for name, host_vars in ((prod_host, prod_vars), (lab_host, lab_vars)):
                assert "." in name, f"{name}: inventories name hosts fully qualified"
                assert is_address(host_vars["stack_address"]), name
            assert set(prod_vars) == set(lab_vars), (prod_host, lab_host)
            for key, value in prod_vars.items():
                if not is_address(value):
                    assert lab_vars[key] == value, (lab_host, key)


def test_settings_files_match_except_names_addresses_and_lab_only_files(production, vm):
    prod, lab = settings(production), settings(vm)
    lab_only = {name for name in lab if "lab" in name.split("/")[1]}
    assert set(lab) - lab_only == set(prod), "the two inventories' settings files differ"
    for name, path in prod.items():
        prod_values, lab_values = load(path), load(lab[name])
        assert set(prod_values) == set(lab_values), name
        for key, value in prod_values.items():
            if is_address(value) or key == "stack_domain":
                continue
            assert lab_values[key] == value, f"{name}: {key}"
    # Lab-only files only add to the lab's own groups or switch off what has
    # no Internet to reach.
    for name in lab_only:
        assert set(load(lab[name])) <= {
            "common_packages_extra", "stack_lab_ca_enabled", "lab_ca_dir", "wordpress_config_extra",
            "lab_alert_receiver_enabled", "alertmanager_webhooks", "alertmanager_emails",
        }, name
