#!/usr/bin/env bash
# The whole test suite, run the way ROS users run it: colcon build + colcon test.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/colcon ] || bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
colcon build --base-paths . --event-handlers console_cohesion+
colcon test --base-paths . --return-code-on-test-failure --event-handlers console_direct+
colcon test-result --test-result-base build --verbose
