# The linear strategy run through Mitogen (https://mitogen.networkgenomics.com/ansible_detailed.html),
# pinned in requirements.txt. Mitogen keeps one Python interpreter per host for the whole run and sends
# modules to it, instead of starting a new interpreter and unpacking each module for every task. Every
# task still runs on every host, and results are the same: only the transport changes. ansible.cfg
# makes it the default; ANSIBLE_STRATEGY=linear goes back to Ansible's own.
#
# This file makes the strategy loadable from the project (Mitogen installs its plugins inside its
# Python package, whose path depends on the venv) and lists the installed collections once per run.
from __future__ import annotations

import ansible.collections.list
import ansible_mitogen.planner

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401

# For every task that runs a collection's module (ansible.posix.sysctl, community.mysql.*, ...), Mitogen
# lists the installed collections to tell the target where their module_utils live. Ansible runs each
# task in a new worker process forked from this one, so the list was rebuilt every time: all ~100
# collections of the `ansible` package imported and their meta/runtime.yml parsed, about 10 ms of a
# task's time spent again and again. The installed collections do not change during a run: list them
# once here, in the process the workers are forked from (the same directories, in the same order).
_COLLECTION_DIRS = tuple(path.decode('utf-8') for path in ansible.collections.list.list_collection_dirs())


def _load_collections(invocation):
    invocation._extra_sys_paths.update(_COLLECTION_DIRS)


ansible_mitogen.planner._load_collections = _load_collections
