#!/usr/bin/env bash
# The whole test suite, run the way ROS users run it: colcon build + colcon test.
set -euo pipefail
cd "$(dirname "$0")/.."
# A missing venv, or one installed from other pins than constraints.txt, is (re)installed first.
if [ ! -x .venv/bin/colcon ] || ! cmp -s constraints.txt .venv/constraints.installed; then bash scripts/setup.sh; fi
# shellcheck disable=SC1091
source .venv/bin/activate
colcon build --base-paths . --event-handlers console_cohesion+
colcon test --base-paths . --return-code-on-test-failure --event-handlers console_direct+ --pytest-args --durations=10 --run-slow
colcon test-result --test-result-base build --verbose
