#!/usr/bin/env bash
# Makes a virtualenv with Mastodon.py (the real Python client of Mastodon's API) for the
# server's integration test, and prints the path of its python. Exit 3 (with the reason
# on stderr) where python3, venv or pip cannot be had: the test then skips.
set -euo pipefail
venv="${1:-$(cd "$(dirname "$0")/../.." && pwd)/target/mastodon-py-venv}"
if ! command -v python3 >/dev/null 2>&1; then
  echo "python3 not found" >&2
  exit 3
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import mastodon' >/dev/null 2>&1; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >&2; then
    echo "python3 -m venv failed (is python3-venv installed?)" >&2
    exit 3
  fi
  if ! "$venv/bin/pip" install --disable-pip-version-check --quiet 'Mastodon.py>=1.8' >&2; then
    echo "pip install Mastodon.py failed (is PyPI reachable?)" >&2
    exit 3
  fi
fi
echo "$venv/bin/python"
