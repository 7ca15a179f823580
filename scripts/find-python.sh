#!/usr/bin/env bash
# Print the path of a Python 3.13 interpreter, or explain in one line why none was found.
#
# Order: $1 (what the user passed as PYTHON=...), then `python3.13` on PATH if it
# actually runs (pyenv shims exist even when the version is not active, and then
# fail), then the newest 3.13.x installed under pyenv's root.
# Why a script and not Make functions: it can be tested on its own (tests/test_setup.py).
set -u

runs_313() {
    # True when "$1" is an interpreter that reports version 3.13 or newer.
    "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 13) else 1)' >/dev/null 2>&1
}

if [ -n "${1:-}" ]; then
    if runs_313 "$1"; then
        command -v "$1" 2>/dev/null || echo "$1"
        exit 0
    fi
    echo "error: PYTHON=$1 is not a runnable Python >= 3.13" >&2
    exit 1
fi

if runs_313 python3.13; then
    "$(command -v python3.13)" -c 'import sys; print(sys.executable)'
    exit 0
fi

root="${PYENV_ROOT:-}"
if [ -z "$root" ] && command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root 2>/dev/null)"
fi
root="${root:-$HOME/.pyenv}"
if [ -d "$root/versions" ]; then
    # Newest 3.13.x first: version-sort the directory names.
    for dir in $(ls -1 "$root/versions" | grep -E '^3\.13\.[0-9]+$' | sort -t. -k3,3nr); do
        candidate="$root/versions/$dir/bin/python3.13"
        if runs_313 "$candidate"; then
            echo "$candidate"
            exit 0
        fi
    done
fi

echo "error: Python 3.13 not found; install it (e.g. 'pyenv install 3.13') or run 'make PYTHON=/path/to/python3.13 ...'" >&2
exit 1
