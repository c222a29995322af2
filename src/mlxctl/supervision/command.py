"""What a child runs for a model, and with which environment.

One place decides the argv of every supervised process: `mlxctl worker MODEL` with
the daemon's per-model settings (batch, queue, prompt cache, key file), or a model's
external server command (`register --command`) with `{model}`, `{port}`, `{host}`
filled in. Children get the daemon's environment without its secrets (the API key
reaches workers only through a 0600 file) and with `HF_HUB_OFFLINE=1`: a worker
never downloads anything.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlxctl.engine.blas import preload_env
from mlxctl.registry import ModelRecord
from mlxctl.settings import Settings
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


def external_command(record: ModelRecord) -> str | None:
    """The record's external server command template (`register --command`), if any."""
    command = record.extra.get("command")
    return command if isinstance(command, str) and command.strip() else None


def model_target(record: ModelRecord) -> str:
    """What `{model}` means: the GGUF file of a GGUF model, else the model folder."""
    gguf_file = record.extra.get("gguf_file")
    if record.format == "gguf" and isinstance(gguf_file, str):
        return str(Path(record.cache_path) / gguf_file)
    return record.cache_path


def render_command(template: str, record: ModelRecord, host: str, port: int) -> list[str]:
    """argv of an external command: split like a shell, then placeholders filled per word."""
    values = {"{model}": model_target(record), "{port}": str(port), "{host}": host}
    argv = []
    for word in shlex.split(template):
        for placeholder, value in values.items():
            word = word.replace(placeholder, value)
        argv.append(word)
    return argv


@dataclass(frozen=True)
class WorkerOptions:
    """The daemon's per-model worker settings; on-demand and slot workers get the same."""

    max_batch: int = 8
    max_queue: int = 64
    prompt_cache_entries: int = 16
    prompt_cache_bytes: str = "2GiB"

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerOptions:
        return cls(
            max_batch=settings.worker_max_batch,
            max_queue=settings.worker_max_queue,
            prompt_cache_entries=settings.worker_prompt_cache_entries,
            prompt_cache_bytes=settings.worker_prompt_cache_bytes,
        )

    def argv(self) -> list[str]:
        return [
            *("--max-batch", str(self.max_batch), "--max-queue", str(self.max_queue)),
            *("--prompt-cache-entries", str(self.prompt_cache_entries)),
            *("--prompt-cache-bytes", self.prompt_cache_bytes),
        ]


def child_argv(
    record: ModelRecord,
    prefix: list[str],
    options: WorkerOptions,
    host: str,
    port: int,
    key_file: Path | None = None,
) -> list[str]:
    """The external command of `record`, or `mlxctl worker SLUG` with the options."""
    template = external_command(record)
    if template is not None:
        return render_command(template, record, host, port)
    argv = [*prefix, record.slug, "--host", host, "--port", str(port), *options.argv()]
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
