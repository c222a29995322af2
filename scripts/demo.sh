#!/usr/bin/env bash
# Install mlxctl into .venv and show its main job on a demo model made by the factory.
# Everything lands in .demo/ (its own MLXCTL_HOME and HF cache): your real files are untouched.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .

export MLXCTL_HOME="$PWD/.demo/home"
export HF_HUB_CACHE="$PWD/.demo/hf-cache"
mlxctl() { .venv/bin/mlxctl "$@"; }

step() { printf '\n\033[1m$ mlxctl %s\033[0m\n' "$*"; mlxctl "$@"; }

if [ ! -d "$HF_HUB_CACHE/models--mlxctl-factory--demo" ]; then
    step dev make-model demo --arch qwen2 --size small
fi
step init
step list
step show demo
step dev generate demo --prompt "Say hello in five words." --max-tokens 24

printf '\nDemo home: %s (export MLXCTL_HOME and HF_HUB_CACHE as above to keep playing)\n' "$MLXCTL_HOME"
