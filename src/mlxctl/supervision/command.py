"""What a child runs for a model, and with which environment.

One place decides the argv of every supervised process: `mlxctl worker MODEL` with
the model's options (`model_options.py`: batch, queue, prompt cache, context) and the
key file, or, when its backend says so (`backend.py`), the model's external server
command (`register --command`) with `{model}`, `{port}`, `{host}` filled in, or, for
a model with a `shard:` section, `mlx.launch` running `mlx_lm.server` on every rank
(`sharding/launch.py`).
Children get the daemon's environment without its secrets (the API key reaches
workers only through a 0600 file) and with `HF_HUB_OFFLINE=1`: a worker never
downloads anything.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from mlxctl.backend import backend_of, model_target
from mlxctl.engine.blas import preload_env
from mlxctl.model_options import ModelOptions
from mlxctl.registry import ModelRecord
from mlxctl.settings import Settings
from mlxctl.sharding import launch as sharded
from mlxctl.supervision.health import NONCE_ENV

# Names of environment variables that hold credentials: never passed to a child.
_SECRET_NAMES = {
    *("MLXCTL_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_ACCESS_KEY_ID"),
    *("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "NETRC"),  # where credentials are kept
}
_SECRET_PARTS = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL|AUTH_CONFIG",
    re.IGNORECASE,
)


def default_command() -> list[str]:
    return [sys.executable, "-m", "mlxctl.cli.main", "worker"]


def worker_command(setting: str) -> list[str]:
    """The command prefix from MLXCTL_WORKER_COMMAND, or this Python's `mlxctl worker`."""
    return shlex.split(setting) if setting.strip() else default_command()


def render_command(template: str, record: ModelRecord, host: str, port: int) -> list[str]:
    """argv of an external command: split like a shell, then placeholders filled per word."""
    values = {"{model}": model_target(record), "{port}": str(port), "{host}": host}
    argv = []
    for word in shlex.split(template):
        for placeholder, value in values.items():
            word = word.replace(placeholder, value)
        argv.append(word)
    return argv


def child_argv(
    record: ModelRecord,
    prefix: list[str],
    options: ModelOptions,
    host: str,
    port: int,
    key_file: Path | None = None,
    run_dir: Path | None = None,
) -> list[str]:
    """The external command of `record`, its sharded launch (hostfile written in
    `run_dir`), or `mlxctl worker SLUG` with its options."""
    if options.shard is not None and run_dir is not None:
        blas = Settings.from_env(os.environ).blas
        model = model_target(record)
        return sharded.command(record.slug, model, options, host, port, run_dir, blas)
    template = backend_of(record).command
    if template is not None:
        return render_command(template, record, host, port)
    argv = [*prefix, record.slug, "--host", host, "--port", str(port), *options.worker_argv()]
    return [*argv, "--api-key-file", str(key_file)] if key_file is not None else argv


def is_secret(name: str) -> bool:
    return name in _SECRET_NAMES or bool(_SECRET_PARTS.search(name))


def child_env(environ: Mapping[str, str], nonce: str | None = None) -> dict[str, str]:
    """`environ` without credentials, offline for the HF hub, OpenBLAS preloaded."""
    env = {name: value for name, value in environ.items() if not is_secret(name)}
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    env.pop(NONCE_ENV, None)
    if nonce is not None:
        env[NONCE_ENV] = nonce
    return preload_env(env, Settings.from_env(env).blas) or env
