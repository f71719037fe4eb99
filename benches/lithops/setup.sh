#!/usr/bin/env bash
# Installs Lithops into a throwaway virtualenv for wisp's benchmark
# (`cargo run -p wisp-bench -- --lithops`). Safe to run again: when the
# pinned version is already there it only says so.
#
#   WISP_LITHOPS_VENV   where the virtualenv goes
#                       (default: ~/.cache/wisp/lithops-venv)
#   WISP_PYTHON         the interpreter that creates it (default: python3)
#
# Exit codes: 0 ready, 3 no Python 3, 1 anything else failed.
# The last line on stdout is the virtualenv's python, for the caller to run.
set -euo pipefail

LITHOPS_VERSION=3.8.0
venv="${WISP_LITHOPS_VENV:-$HOME/.cache/wisp/lithops-venv}"
python="${WISP_PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "setup.sh: $python not found: the Lithops comparison needs Python 3.9 or later" >&2
    exit 3
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)'; then
    echo "setup.sh: $("$python" --version 2>&1) is too old: Lithops $LITHOPS_VERSION needs Python 3.9 or later" >&2
    exit 3
fi

venv_python="$venv/bin/python"
installed() {
    [ -x "$venv_python" ] &&
        "$venv_python" -c "import importlib.metadata as m, sys; sys.exit(m.version('lithops') != '$LITHOPS_VERSION')" 2>/dev/null
}

if installed; then
    echo "setup.sh: lithops $LITHOPS_VERSION already installed in $venv" >&2
else
    if [ ! -x "$venv_python" ]; then
        echo "setup.sh: creating a virtualenv in $venv" >&2
        mkdir -p "$(dirname "$venv")"
        if ! "$python" -m venv "$venv" >&2; then
            echo "setup.sh: $python cannot create a virtualenv (on Debian: apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
    echo "setup.sh: installing lithops==$LITHOPS_VERSION" >&2
    "$venv_python" -m pip install --quiet --disable-pip-version-check "lithops==$LITHOPS_VERSION" >&2
    installed || { echo "setup.sh: lithops $LITHOPS_VERSION did not install in $venv" >&2; exit 1; }
fi
echo "setup.sh: $("$venv_python" --version 2>&1), lithops $("$venv_python" -c 'import importlib.metadata as m; print(m.version("lithops"))')" >&2
echo "$venv_python"
