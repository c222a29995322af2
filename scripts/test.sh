#!/usr/bin/env bash
# Install mlxctl with its dev tools into .venv, then run every check: ruff, mypy, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# System packages the tests use, best effort (root with apt only; elsewhere install them yourself):
# OpenBLAS for MLX's CPU backend, a real OCI registry (docker-registry) with htpasswd and openssl,
# and a real browser (chromium + its chromedriver) for the tests of web pages and the dashboard.
if [ "$(uname -s)" = Linux ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=""
    for pkg in libopenblas0-pthread docker-registry apache2-utils openssl chromium chromium-driver; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends $missing >/dev/null) || echo "note: could not install:$missing"
    fi
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
# GGUF support builds llama.cpp from source once (pip caches the wheel). Generic x86-64 flags:
# a native build with AMX kernels segfaulted on quantized models on this kind of machine.
if [ "$(uname -m)" = x86_64 ]; then
    export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_CURL=OFF}"
fi
.venv/bin/python -m pip install --quiet -e ".[dev,gguf]" \
    || echo "note: llama-cpp-python did not build; the GGUF tests will skip and say so"

# The coding agents the client tests drive (Claude Code, Codex), from npm into .cache/npm,
# best effort: without npm those tests skip and say so.
if command -v npm >/dev/null; then
    npm install --silent --no-audit --no-fund --prefix .cache/npm \
        @anthropic-ai/claude-code@2.1.332 @openai/codex@0.171.0 >/dev/null \
        || echo "note: could not install Claude Code and Codex from npm"
fi

echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
