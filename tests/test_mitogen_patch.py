"""plugins/strategy/mitogen_linear.py replaces a private Mitogen function
(ansible_mitogen.planner._load_collections) with one that lists the installed
collections once per run. A Mitogen upgrade that renames, moves or stops
calling it must fail here, not slow every converge down silently."""

import importlib.util
import inspect
import pathlib

import ansible.collections.list
import ansible_mitogen.planner
from ansible.plugins.loader import init_plugin_loader

PLUGIN = pathlib.Path(__file__).resolve().parents[1] / "plugins" / "strategy" / "mitogen_linear.py"


def load_plugin():
    # As ansible-playbook does before it loads a strategy: collections importable.
    init_plugin_loader()
    spec = importlib.util.spec_from_file_location("wpha_mitogen_linear", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mitogen_still_calls_the_function_the_plugin_replaces():
    # invoke() calls it by its module-level name for every collection's module.
    assert "_load_collections(invocation)" in inspect.getsource(ansible_mitogen.planner.invoke)


def test_the_replacement_adds_the_same_collection_directories():
    plugin = load_plugin()
    assert ansible_mitogen.planner._load_collections is plugin._load_collections

    class Invocation:
        _extra_sys_paths = set()

    plugin._load_collections(Invocation)
    expected = {path.decode("utf-8") for path in ansible.collections.list.list_collection_dirs()}
    assert expected and Invocation._extra_sys_paths == expected


def test_the_plugin_is_mitogens_linear_strategy():
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

    assert load_plugin().StrategyModule is StrategyModule
