#!/usr/bin/env bash
# Re-resolves constraints.txt from requirements-dev.txt in a throw-away venv: today's releases of
# every dependency (torch stays at the pin of requirements.txt). Review the diff, run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
{
  sed -n '1,/^# Resolved on/p' constraints.txt | sed '$d'
  echo "# Resolved on $(date +%F) (Python $("$scratch/venv/bin/python" -c 'import platform; print(platform.python_version())'), $(uname -m))."
  "$scratch/venv/bin/python" -m pip freeze --all --disable-pip-version-check \
    | grep -v -E '^(pip|wheel)==' | sed -E 's/^(torch==[^+]*)\+.*/\1/' | LC_ALL=C sort -f
} > constraints.txt.new
mv constraints.txt.new constraints.txt
git --no-pager diff --stat -- constraints.txt || true
