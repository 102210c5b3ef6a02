#!/usr/bin/env bash
# Type-check hublens as installed: mypy over a copy of the package tree as pip lays it out
# (hooks/ -> hublens/hooks, analyses/ -> hublens/analyses), so every module is seen with its real
# import name. ignore_missing_imports is limited to third-party modules (pyproject.toml).
#   bash scripts/typecheck.sh        # uses $HUBLENS_VENV (default .venv)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${HUBLENS_VENV:-$root/.venv}"
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --no-build-isolation --target "$tmp/site" "$root" >/dev/null
cd "$tmp/site"
"$venv/bin/python" -m mypy --config-file "$root/pyproject.toml" -p hublens
