#!/usr/bin/env bash
# Install mlxctl into .venv and show its main job on a demo model made by the factory.
# Everything lands in .demo/ (its own MLXCTL_HOME and HF cache): your real files are untouched.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# Linux: OpenBLAS under MLX's CPU backend (workers preload it; see docs/performance.md).
# Best effort: only as root with apt; without it workers keep the wheel's reference BLAS.
if [ "$(uname -s)" = Linux ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
    && ! ls /usr/lib/*-linux-gnu/openblas-pthread/libopenblas.so.0 >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        libopenblas0-pthread >/dev/null) || echo "note: OpenBLAS not installed; workers stay slower"
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

# The daemon: one front door; models load on the first request and stay warm (keep_alive).
export MLXCTL_HOST="127.0.0.1:${MLXCTL_DEMO_PORT:-11500}"
printf '\n\033[1m$ mlxctl serve &\033[0m   (log: %s/demo-serve.log)\n' "$MLXCTL_HOME"
.venv/bin/mlxctl serve >"$MLXCTL_HOME/demo-serve.log" 2>&1 &
daemon=$!
# The daemon stays up for the dashboard unless MLXCTL_DEMO_KEEP=0 (or the demo fails).
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    curl -sf "http://$MLXCTL_HOST/health" >/dev/null 2>&1 && break
    sleep 0.5
done
printf '\n\033[1m$ curl http://%s/v1/chat/completions\033[0m\n' "$MLXCTL_HOST"
curl -sf "http://$MLXCTL_HOST/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model": "demo", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 16}'
echo
step run demo "Tell me about lighthouses." --max-tokens 24 --verbose
step ps
step status

printf '\nDemo home: %s (export MLXCTL_HOME and HF_HUB_CACHE as above to keep playing)\n' "$MLXCTL_HOME"
if [ "${MLXCTL_DEMO_KEEP:-1}" != 0 ]; then
    trap - EXIT  # leave the daemon serving the dashboard
    printf '\nThe daemon keeps running (pid %s; stop it with: kill %s)\n' "$daemon" "$daemon"
    printf '\033[1mDashboard: http://%s/ui/\033[0m\n' "$MLXCTL_HOST"
else
    printf '\nDashboard (while `mlxctl serve` runs): http://%s/ui/\n' "$MLXCTL_HOST"
fi
