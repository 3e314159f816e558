# The linear strategy run through Mitogen (https://mitogen.networkgenomics.com/ansible_detailed.html),
# pinned in requirements.txt. Mitogen keeps one Python interpreter per host for the whole run and sends
# modules to it, instead of starting a new interpreter and unpacking each module for every task. Every
# task still runs on every host, and results are the same: only the transport changes. ansible.cfg
# makes it the default; ANSIBLE_STRATEGY=linear goes back to Ansible's own.
#
# This file only makes the strategy loadable from the project: Mitogen installs its plugins inside its
# Python package, whose path depends on the venv.
from __future__ import annotations

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401
