#!/usr/bin/env bash
# Creates (or completes) a virtualenv from a pinned lock file, then installs the project into it.
#   install-python.sh VENV LOCKFILE [--no-project]
set -euo pipefail
venv=$1 lock=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$venv/bin/python" ]; then
  echo "python: creating $venv"
  python3 -m venv "$venv"
fi
echo "python: installing $(grep -c '==' "$lock") pinned packages from $lock into $venv (progress in $venv/pip.log)"
"$venv/bin/python" -m pip install -q --upgrade pip >"$venv/pip.log" 2>&1
"$venv/bin/python" -m pip install --progress-bar off -r "$lock" >>"$venv/pip.log" 2>&1 || { tail -30 "$venv/pip.log"; exit 1; }
if [ "${3:-}" != "--no-project" ]; then
  "$venv/bin/python" -m pip install -q --no-deps -e "$ROOT" >>"$venv/pip.log" 2>&1 || { tail -30 "$venv/pip.log"; exit 1; }
fi
echo "python: $venv ready"
