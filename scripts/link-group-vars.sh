#!/usr/bin/env bash
# Link every shared group_vars/<group>.yml into every inventory as
# inventory/<env>/group_vars/<group>/00_project_defaults.yml, so plays run with
# `-i inventory/<env>` load the shared defaults and the environment's own files
# (sorting later) override them. Run it after adding a shared file or an
# inventory; tests/test_group_vars.py fails until the links exist.
set -euo pipefail
cd "$(dirname "$0")/.."
for inventory in inventory/*/; do
  for shared in group_vars/*.yml; do
    group="$(basename "$shared" .yml)"
    mkdir -p "$inventory/group_vars/$group"
    ln -sfn "../../../../$shared" "$inventory/group_vars/$group/00_project_defaults.yml"
  done
done
