"""The project's harness: the lab as its inventory describes it and the
tools built on it. Importable from the repository root: pytest.ini puts the
root on pytest's path, and bin/bench and bin/trace run these modules with
PYTHONPATH set to it.

- harness.lab: the lab model (inventory with child groups resolved, hosts,
  secrets, playbook runs) and docker(), honouring $DOCKER;
- harness.recap: Ansible's PLAY RECAP read back (bin/lab, bin/test, the bench);
- harness.containers: how a container runs systemd (one definition, the
  lab_docker role's), for the bench's own containers;
- harness.bench: bin/bench, in parts (baseline, load, takeover, converge);
- harness.trace: bin/trace.
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Ansible's commands beside the Python running the harness: the project's venv.
BIN = pathlib.Path(sys.executable).parent
