"""Every mlxctl setting, declared once.

Each field of `Settings` carries its environment variable and help text in its
metadata; `Settings.from_env()` reads them (the environment over `config.yaml`'s
`settings:` section, layered by `config/layers.py`), `describe()` lists them for
`--help` output and for the docs test that keeps `docs/settings.md` complete.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mlxctl.config.layers import SettingError, layered_values
from mlxctl.config.source import Loaded, config_path, load_yaml
from mlxctl.errors import InvalidInput


def _setting(env: str, help: str, default: Any, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"env": env, "help": help, "secret": secret})


def _default_hf_cache(environ: Mapping[str, str]) -> Path:
    # Same precedence as huggingface_hub, computed per call so tests can point it elsewhere.
    if environ.get("HF_HUB_CACHE"):
        return Path(environ["HF_HUB_CACHE"]).expanduser()
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "hub"
    xdg = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


@dataclass(frozen=True)
class Settings:
    home: Path = _setting(
        "MLXCTL_HOME",
        "Folder holding the registry database, logs and the model store.",
        Path("~/.mlxctl"),
    )
    config_file: Path | None = _setting(
        "MLXCTL_CONFIG",
        "The config file (daemon settings, per-model sections, aliases, presets; "
        "docs/config.md); default: config.yaml in MLXCTL_HOME.",
        None,
    )
    config_watch: bool = _setting(
        "MLXCTL_CONFIG_WATCH",
        "A running daemon reloads the config file when it changes (SIGHUP and "
        "`mlxctl config reload` reload it either way).",
        True,
    )
    hf_cache: Path | None = _setting(
        "HF_HUB_CACHE",
        "Hugging Face hub cache scanned by `mlxctl init` (falls back to $HF_HOME/hub, "
        "then ~/.cache/huggingface/hub, as huggingface_hub does).",
        None,
    )
    debug: bool = _setting(
        "MLXCTL_DEBUG",
        "Print full tracebacks instead of one-line errors.",
        False,
    )
    db_busy_timeout: float = _setting(
        "MLXCTL_DB_BUSY_TIMEOUT",
        "Seconds a registry writer waits for another process's write to finish.",
        30.0,
    )
    worker_test_hooks: bool = _setting(
        "MLXCTL_WORKER_TEST_HOOKS",
        "Test only: workers honour the `mlxctl_test_force` request field, which forces a "
        "token sequence through the engine (how tests exercise tool calls and reasoning).",
        False,
    )
    blas: str = _setting(
        "MLXCTL_BLAS",
        "Linux only: BLAS library preloaded into worker processes under MLX's CPU backend "
        "('auto' finds OpenBLAS, 'off' keeps the wheel's reference BLAS, or a path).",
        "auto",
    )

    # The daemon (`mlxctl serve`) and the CLI that talks to it.
    host: str = _setting(
        "MLXCTL_HOST",
        "Where `mlxctl serve` listens and where the CLI finds it: host:port or http://host:port. "
        "Binding a non-loopback address requires MLXCTL_API_KEY.",
        "127.0.0.1:11500",
    )
    api_key: str | None = _setting(
        "MLXCTL_API_KEY",
        "When set, every daemon and worker route but /health needs `Authorization: Bearer "
        "<key>` (or `x-api-key`); the CLI sends it, the daemon passes it to its workers.",
        None,
        secret=True,
    )

    keep_alive: str = _setting(
        "MLXCTL_KEEP_ALIVE",
        "How long an idle model stays loaded: a duration (30s, 5m, 1h), seconds, "
        "-1 (until evicted) or 0 (unload after each request). Requests may override it.",
        "5m",
    )
    memory_budget: str = _setting(
        "MLXCTL_MEMORY_BUDGET",
        "Memory the loaded models, on demand and on slots, may use together (estimated "
        "weights + KV cache): "
        "a share of physical RAM (75%) or a size (16GiB).",
        "75%",
    )
    max_loaded_models: int = _setting(
        "MLXCTL_MAX_LOADED_MODELS",
        "Most models loaded on demand at once (slots' models do not count); loading one more "
        "evicts the least recently used idle one.",
        3,
    )
    max_queue: int = _setting(
        "MLXCTL_MAX_QUEUE",
        "Requests per model that may wait for it to load; more are refused with 429.",
        64,
    )
    queue_timeout: float = _setting(
        "MLXCTL_QUEUE_TIMEOUT",
        "Seconds a request waits for busy models to free memory before a 503.",
        120.0,
    )
    load_timeout: float = _setting(
        "MLXCTL_LOAD_TIMEOUT",
        "Seconds a worker may take to load its model before the load counts as failed.",
        300.0,
    )
    load_cooldown: float = _setting(
        "MLXCTL_LOAD_COOLDOWN",
        "Seconds after a failed load during which requests for that model fail at once.",
        10.0,
    )
    kv_context: int = _setting(
        "MLXCTL_KV_CONTEXT",
        "Tokens of KV cache reserved per concurrent sequence when estimating a model's memory "
        "(capped at the model's context length).",
        4096,
    )
    worker_max_batch: int = _setting(
        "MLXCTL_WORKER_MAX_BATCH",
        "Sequences a worker decodes together (its --max-batch).",
        8,
    )
    worker_max_queue: int = _setting(
        "MLXCTL_WORKER_MAX_QUEUE",
        "Requests a worker queues beyond its batch before answering 429 (its --max-queue).",
        64,
    )
    worker_prompt_cache_entries: int = _setting(
        "MLXCTL_WORKER_PROMPT_CACHE_ENTRIES",
        "KV caches of past prompts each worker keeps for reuse (its --prompt-cache-entries).",
        16,
    )
    worker_prompt_cache_bytes: str = _setting(
        "MLXCTL_WORKER_PROMPT_CACHE_BYTES",
        "Memory cap of each worker's prompt cache, e.g. 512MiB (its --prompt-cache-bytes).",
        "2GiB",
    )
    worker_kv_bits: int = _setting(
        "MLXCTL_WORKER_KV_BITS",
        "Quantize each MLX worker's KV cache to 4 or 8 bits (its --kv-bits); 0: keep the "
        "model's dtype. The memory estimate counts the quantized size.",
        0,
    )
    worker_kv_group_size: int = _setting(
        "MLXCTL_WORKER_KV_GROUP_SIZE",
        "Elements sharing one scale and bias in a quantized KV cache: 32, 64 or 128 "
        "(its --kv-group-size).",
        64,
    )
    worker_disk_cache_bytes: str = _setting(
        "MLXCTL_WORKER_DISK_CACHE_BYTES",
        "Disk cap of each MLX model's prompt cache under MLXCTL_HOME/prompt-cache, e.g. "
        "4GiB (its --disk-cache-bytes); 0 turns the disk cache off.",
        "4GiB",
    )
    worker_context: int = _setting(
        "MLXCTL_WORKER_CONTEXT",
        "Context window (tokens) a worker serves and a GGUF's shared KV cache is sized for "
        "(its --context); 0: the model's own (a GGUF's capped at 8192).",
        0,
    )
    worker_prompt_lookup: bool = _setting(
        "MLXCTL_WORKER_PROMPT_LOOKUP",
        "Speculative decoding by prompt lookup (n-gram drafts from the context) in every mlx-lm "
        "worker (its --prompt-lookup): faster when answers repeat their context.",
        False,
    )
    worker_num_draft_tokens: int = _setting(
        "MLXCTL_WORKER_NUM_DRAFT_TOKENS",
        "Tokens drafted per speculative step, by a draft model or prompt lookup "
        "(its --num-draft-tokens).",
        3,
    )
    worker_first_byte_timeout: float = _setting(
        "MLXCTL_WORKER_FIRST_BYTE_TIMEOUT",
        "Seconds the daemon waits for a worker to start answering a request: the whole "
        "prompt's prefill for a stream, the whole answer otherwise. Then the request fails (504).",
        600.0,
    )
    worker_idle_timeout: float = _setting(
        "MLXCTL_WORKER_IDLE_TIMEOUT",
        "Seconds a streamed answer may go without a byte from the worker before the request "
        "fails with an error event.",
        300.0,
    )
    worker_liveness_interval: float = _setting(
        "MLXCTL_WORKER_LIVENESS_INTERVAL",
        "Seconds between health checks of ready workers (on-demand and slot; 0: none).",
        5.0,
    )
    worker_liveness_timeout: float = _setting(
        "MLXCTL_WORKER_LIVENESS_TIMEOUT",
        "Seconds a ready worker may fail its health checks (hung, stopped) before it is "
        "killed; its requests end with an error and the next request loads the model again.",
        30.0,
    )
    worker_stop_grace: float = _setting(
        "MLXCTL_WORKER_STOP_GRACE",
        "Seconds a stopping worker gets after SIGTERM before SIGKILL.",
        10.0,
    )
    worker_command: str = _setting(
        "MLXCTL_WORKER_COMMAND",
        "Command that starts a worker, before MODEL and its options "
        "(default: this Python with `-m mlxctl.cli.main worker`).",
        "",
    )
    allow_insecure_pull: bool = _setting(
        "MLXCTL_ALLOW_INSECURE_PULL",
        'Let API clients ask the daemon for a plain-http registry (`"insecure": true` on '
        "/api/pull and the admin pull/push). Off, only `mlxctl pull --insecure` without a "
        "running daemon can; localhost registries use http regardless.",
        False,
    )
    log_file: Path | None = _setting(
        "MLXCTL_LOG_FILE",
        "Write the daemon's JSON log lines to this file, rotated like the worker logs, "
        "instead of stderr (`service install` sets it for launchd, which never rotates).",
        None,
    )
    log_max_bytes: int = _setting(
        "MLXCTL_LOG_MAX_BYTES",
        "Size in bytes at which a log (the daemon's file, each worker's and slot's) is "
        "rotated while running; 0 never rotates.",
        50 << 20,
    )
    log_backups: int = _setting(
        "MLXCTL_LOG_BACKUPS",
        "Rotated logs kept per log file (<name>.log.1 … .N).",
        5,
    )
    shutdown_grace: float = _setting(
        "MLXCTL_SHUTDOWN_GRACE",
        "Seconds `mlxctl serve` lets running requests finish after SIGTERM before stopping.",
        30.0,
    )

    # Who may talk to the daemon and its workers over HTTP (docs/security.md).
    allowed_hosts: str = _setting(
        "MLXCTL_ALLOWED_HOSTS",
        "More Host header values to answer, comma-separated (name, name:port, *.domain, or * "
        "for any); loopback names and the bound address are always answered. Others get 403.",
        "",
    )
    origins: str = _setting(
        "MLXCTL_ORIGINS",
        "Web origins whose pages may call the API, comma-separated, with wildcards "
        "(http://localhost:*, app://*, * for any); they get CORS answers, others 403.",
        "",
    )
    max_body_bytes: int = _setting(
        "MLXCTL_MAX_BODY_BYTES",
        "Largest request body the daemon and workers read, in bytes; larger ones get 413.",
        32 * 1024 * 1024,
    )
    max_blob_bytes: int = _setting(
        "MLXCTL_MAX_BLOB_BYTES",
        "Largest model file `POST /api/blobs/:digest` takes, in bytes (streamed to disk, "
        "never held in memory); larger ones get 413.",
        256 * 1024**3,
    )
    max_embed_inputs: int = _setting(
        "MLXCTL_MAX_EMBED_INPUTS",
        "Most inputs one embeddings request may carry; more get 400.",
        2048,
    )
    max_rerank_documents: int = _setting(
        "MLXCTL_MAX_RERANK_DOCUMENTS",
        "Most documents one rerank request may carry; more get 400.",
        1000,
    )
    max_image_bytes: int = _setting(
        "MLXCTL_MAX_IMAGE_BYTES",
        "Largest image (decoded bytes) a chat request may send a vision model; larger get 400.",
        20 * 1024 * 1024,
    )
    allow_client_templates: bool = _setting(
        "MLXCTL_ALLOW_CLIENT_TEMPLATES",
        "Let requests bring their own chat template (`chat_template_kwargs.chat_template`); "
        "such templates render in a separate process with time and memory limits.",
        False,
    )
    template_timeout: float = _setting(
        "MLXCTL_TEMPLATE_TIMEOUT",
        "Seconds a chat template may take to render before the request gets 400.",
        10.0,
    )
    template_max_chars: int = _setting(
        "MLXCTL_TEMPLATE_MAX_CHARS",
        "Longest prompt text a chat template may render; longer renders get 400.",
        4 * 1024 * 1024,
    )

    # Slots: fixed ports with stable aliases (`mlxctl load MODEL PORT|ALIAS`).
    slot_base_port: int = _setting(
        "MLXCTL_SLOT_BASE_PORT",
        "First slot port; slots take consecutive ports, one per alias in MLXCTL_SLOT_ALIASES.",
        8100,
    )
    slot_aliases: str = _setting(
        "MLXCTL_SLOT_ALIASES",
        "Comma-separated slot aliases, in port order from MLXCTL_SLOT_BASE_PORT.",
        "jerry-xl,jerry-l,jerry-m,jerry-s,bench-xl,bench-l,bench-m,bench-s,utility-a,utility-b",
    )
    slot_host: str = _setting(
        "MLXCTL_SLOT_HOST",
        "Address slot workers listen on; a non-loopback one requires MLXCTL_API_KEY, which "
        "the slot workers then require too (they get it through a 0600 file, never argv or "
        "the environment).",
        "127.0.0.1",
    )
    slot_reconcile_interval: float = _setting(
        "MLXCTL_SLOT_RECONCILE_INTERVAL",
        "Seconds between the daemon's slot reconciliations (0: only at start and on demand).",
        30.0,
    )
    slot_strict: bool = _setting(
        "MLXCTL_SLOT_STRICT",
        "Refuse to start a slot whose model lacks settings it needs (see `mlxctl verify`).",
        False,
    )

    # Clients that name models of their own (coding agents) and keep conversation state.
    model_map: str = _setting(
        "MLXCTL_MODEL_MAP",
        "Comma-separated `pattern=model` pairs (shell-style patterns, first match wins) for "
        "model names that are not registered, e.g. `claude-*=qwen3:4b,*=qwen3:4b`; tried "
        "before config.yaml's pattern aliases.",
        "",
    )
    responses_max: int = _setting(
        "MLXCTL_RESPONSES_MAX",
        "Responses (`/v1/responses` with store=true) the daemon keeps for "
        "previous_response_id; the least recently used go first (0: keep none).",
        1000,
    )
    responses_ttl: float = _setting(
        "MLXCTL_RESPONSES_TTL",
        "Seconds a stored response is kept after it was last used.",
        3600.0,
    )

    # Peers (docs/scale-out.md): this daemon's name in `model@host`, how often peers are read.
    host_name: str = _setting(
        "MLXCTL_HOST_NAME",
        "This daemon's name as its peers list it (the `host` in `model@host`); default: the "
        "machine's short hostname.",
        "",
    )
    peer_poll_interval: float = _setting(
        "MLXCTL_PEER_POLL_INTERVAL",
        "Seconds between two reads of each peer's status (config.yaml `peers:`); a peer that "
        "misses two reads, or refuses a connection, is down until it answers again.",
        1.0,
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings: the environment over `config.yaml`'s `settings:` over defaults."""
        env = os.environ if environ is None else environ
        return cls.layered(env, load_yaml(config_path(env, cls.home_of(env))))

    @classmethod
    def layered(cls, environ: Mapping[str, str], file: Loaded | None) -> Settings:
        """The settings with `file`'s `settings:` section as the layer under `environ`."""
        file_settings = file.settings() if file is not None else {}
        try:
            values = layered_values(cls, environ, file_settings)
        except SettingError as e:
            if e.origin == "env" or file is None:
                kind = str(next(f.type for f in fields(cls) if f.name == e.name)).split(" |")[0]
                raise InvalidInput(
                    f"{e.env}={e.raw!r} is not a valid {kind} (setting '{e.name}')"
                ) from None
            raise file.error(("settings", e.name), e.message) from None
        hf_cache = values["hf_cache"] or _default_hf_cache(environ)
        home = cls.home_of(environ)
        return cls(**{**values, "home": home, "hf_cache": Path(hf_cache).expanduser()})

    @classmethod
    def home_of(cls, environ: Mapping[str, str]) -> Path:
        """MLXCTL_HOME (the environment only: the config file lives there)."""
        return Path(environ.get("MLXCTL_HOME") or cls.home).expanduser()

    @property
    def hf_cache_dir(self) -> Path:
        assert self.hf_cache is not None  # from_env always fills it
        return self.hf_cache

    @property
    def home_id(self) -> str:
        """Which home a daemon serves, without naming the path (its /health answers it)."""
        return hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:16]

    @property
    def peer_name(self) -> str:
        """`host_name`, else the machine's short hostname."""
        return self.host_name or socket.gethostname().split(".")[0] or "localhost"

    @property
    def registry_path(self) -> Path:
        return self.home / "registry.db"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def store_dir(self) -> Path:
        return self.home / "store"


def is_secret(name: str) -> bool:
    """Whether the setting holds a secret (never printed in clear)."""
    return any(f.name == name and f.metadata["secret"] for f in fields(Settings))


def describe() -> list[tuple[str, str, str, str]]:
    """(name, env var, default, help) for every setting, in declaration order."""
    rows = []
    for f in fields(Settings):
        default = "" if f.default is None else str(f.default)
        rows.append((f.name, f.metadata["env"], default, f.metadata["help"]))
    return rows
