#!/usr/bin/env bash
# Creates .venv in the project root with everything to run and test moe3d_ros without a ROS
# install, at the exact versions of constraints.txt, and installs the package itself in editable mode (its commands land in .venv/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# colcon must not mistake the ROS wheels' share/*/package.xml for packages of this workspace.
touch .venv/COLCON_IGNORE
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
# What this venv was installed from: scripts/test.sh re-runs the setup when constraints.txt changes.
cp constraints.txt .venv/constraints.installed
echo "setup done: .venv ready (activate with: source .venv/bin/activate)"
