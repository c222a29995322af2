"""One worker process: spawn, wait until it serves, stop, and notice its exit at once.

    new ─start()─▶ loading ─wait_ready()─▶ ready ─stop()─▶ unloading ─▶ exited
                      └────────── exits, fails or times out ──────────▶ failed

Each worker runs `<command> MODEL --host 127.0.0.1 --port P --max-batch N
--max-queue N` in its own process group (or, for a model registered with an external
OpenAI-compatible server command, that command with `{model}`, `{port}` and `{host}`
filled in: the same supervision, another engine behind the same door), with stdout
and stderr appended to `MLXCTL_HOME/logs/<slug>.log`. A task awaits the process's
exit, so a crash is seen the moment it happens. On Linux the child also gets PR_SET_PDEATHSIG, so
even a daemon killed with SIGKILL takes its workers with it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import re
import shlex
import signal
import socket
import sys
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from mlxctl.engine.blas import preload_env
from mlxctl.registry import ModelRecord
from mlxctl.settings import Settings
from mlxctl.workers import orphans
from mlxctl.workers.base import LoadError, ProcessState, WorkerFactory

log = logging.getLogger("mlxctl.workers")

# Logs larger than this are rotated to <slug>.log.1 when a worker starts.
_LOG_ROTATE_BYTES = 16 << 20
_ERROR_LINE = re.compile(r"(Error|Exception|error:|Traceback|Killed)")
_PR_SET_PDEATHSIG = 1


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


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the worker binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """A `mlxctl worker` child process serving one model on a local port."""

    def __init__(
        self,
        record: ModelRecord,
        *,
        command: Sequence[str],
        logs_dir: Path,
        run_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        max_batch: int = 8,
        max_queue: int = 64,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.slug = record.slug
        self.record = record
        self._command = list(command)
        self._logs_dir = logs_dir
        self._run_dir = run_dir
        self._env = dict(os.environ if env is None else env)
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._http = http
        self._state: ProcessState = "new"
        self._port: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._exited = asyncio.Event()
        self._returncode: int | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._failure: str | None = None
        self.started_at: float | None = None

    # Read-only views ----------------------------------------------------------

    @property
    def state(self) -> ProcessState:
        return self._state

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @property
    def log_path(self) -> Path:
        return self._logs_dir / f"{self.slug}.log"

    @property
    def external(self) -> bool:
        return external_command(self.record) is not None

    def argv(self) -> list[str]:
        template = external_command(self.record)
        if template is not None:
            assert self._port is not None
            return render_command(template, self.record, "127.0.0.1", self._port)
        port = str(self._port)
        limits = ["--max-batch", str(self._max_batch), "--max-queue", str(self._max_queue)]
        return [*self._command, self.slug, "--host", "127.0.0.1", "--port", port, *limits]

    # Lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        if self._state != "new":
            raise LoadError(f"worker for '{self.slug}' was already started")
        self._state = "loading"
        self._port = free_port()
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        _rotate(self.log_path)
        argv = self.argv()
        with open(self.log_path, "ab") as logfile:
            header = f"=== mlxctl {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {shlex.join(argv)}\n"
            logfile.write(header.encode())
            logfile.flush()
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=logfile,
                    stderr=asyncio.subprocess.STDOUT,
                    env=self._child_env(),
                    start_new_session=True,
                    preexec_fn=_die_with_parent(),
                )
            except OSError as e:
                self._fail(f"cannot start the worker ({shlex.join(argv[:4])}): {e}")
                self._exited.set()
                raise LoadError(self._failure or "") from None
        self.started_at = time.time()
        if self._run_dir is not None:
            orphans.record(self._run_dir, self.slug, self._proc.pid, self._port)
        self._reaper = asyncio.create_task(self._reap(), name=f"reap-{self.slug}")

    async def wait_ready(self, timeout: float) -> None:
        """Poll /health (quickly at first) until `ok`; the process's exit cuts it short."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.02
        client = self._http or httpx.AsyncClient(trust_env=False)
        try:
            while True:
                if self._exited.is_set():
                    raise LoadError(self._fail(self.exit_message()))
                probe = _external_health if self.external else _health
                status, error = await probe(client, self.base_url)
                if status == "ok":
                    self._state = "ready"
                    return
                if status == "failed":
                    message = self._with_log(f"the model failed to load: {error}")
                    raise LoadError(self._fail(message))
                if loop.time() >= deadline:
                    raise LoadError(
                        self._fail(self._with_log(f"not ready after {timeout:g} s (load timeout)"))
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._exited.wait(), delay)
                delay = min(delay * 1.5, 0.25)
        finally:
            if client is not self._http:
                await client.aclose()

    async def wait_exit(self) -> int | None:
        await self._exited.wait()
        return self._returncode

    async def stop(self, grace: float) -> None:
        """SIGTERM to the group, SIGKILL after `grace` s; safe to call in any state."""
        if self._proc is None:
            self._state = "exited"
            self._exited.set()
            return
        if not self._exited.is_set():
            if self._state != "failed":
                self._state = "unloading"
            self._signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._exited.wait(), grace)
            except TimeoutError:
                log.warning("worker %s (pid %s) ignored SIGTERM; killing it", self.slug, self.pid)
                self._signal(signal.SIGKILL)
                await self._exited.wait()
        # Anything the worker left in its group goes too.
        self._signal(signal.SIGKILL)

    def kill_now(self) -> None:
        """Synchronous last resort (atexit, daemon crash paths): SIGKILL the group."""
        if self._proc is not None and self._returncode is None:
            self._signal(signal.SIGKILL)

    def exit_message(self) -> str:
        code = self._returncode
        if code is None:
            what = "did not start"
        elif code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            what = f"was killed by {name}"
        else:
            what = f"exited with code {code}"
        return self._with_log(f"the worker {what}")

    # Internals -----------------------------------------------------------------

    async def _reap(self) -> None:
        assert self._proc is not None
        code = await self._proc.wait()
        self._returncode = code
        if self._state != "failed":
            self._state = "exited"
        if self._run_dir is not None:
            orphans.forget(self._run_dir, self.slug, self._proc.pid)
        self._exited.set()

    def _signal(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def _fail(self, message: str) -> str:
        self._state = "failed"
        self._failure = message
        return message

    def _with_log(self, message: str) -> str:
        line = last_error_line(self.log_path)
        detail = f": {line}" if line and line not in message else ""
        return f"{message}{detail} (log: {self.log_path})"

    def _child_env(self) -> dict[str, str]:
        env = dict(self._env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        blas = Settings.from_env(env).blas
        return preload_env(env, blas) or env


async def _health(client: httpx.AsyncClient, base_url: str) -> tuple[str | None, str | None]:
    try:
        response = await client.get(f"{base_url}/health", timeout=2.0)
        body: Any = response.json()
    except (httpx.HTTPError, ValueError):
        return None, None  # not listening yet, or mid-startup
    if not isinstance(body, dict):
        return None, None
    return body.get("status"), body.get("error")


async def _external_health(
    client: httpx.AsyncClient, base_url: str
) -> tuple[str | None, str | None]:
    """`ok` once /health answers 200, or, for servers without one, /v1/models does."""
    try:
        response = await client.get(f"{base_url}/health", timeout=2.0)
        if response.status_code in (404, 405):
            response = await client.get(f"{base_url}/v1/models", timeout=2.0)
    except httpx.HTTPError:
        return None, None  # not listening yet
    return ("ok", None) if response.status_code == 200 else (None, None)


def last_error_line(path: Path, max_bytes: int = 8192) -> str | None:
    """The last line of the log that reads like an error (else the last line), trimmed."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            tail = f.read().decode(errors="replace")
    except OSError:
        return None
    # Only the latest run: everything after the last start header.
    tail = tail.rsplit("=== mlxctl ", 1)[-1]
    lines = [line.strip() for line in tail.splitlines()[1:] if line.strip()]
    for line in reversed(lines):
        if _ERROR_LINE.search(line) and not line.startswith("Traceback"):
            return _trim(_json_message(line))
    return _trim(lines[-1]) if lines else None


def _json_message(line: str) -> str:
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except ValueError:
            return line
        if isinstance(data, dict):
            return str(data.get("message") or data.get("msg") or line)
    return line


def _trim(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rotate(path: Path) -> None:
    try:
        if path.stat().st_size > _LOG_ROTATE_BYTES:
            path.replace(path.with_name(path.name + ".1"))
    except OSError:
        pass


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when the daemon dies (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the daemon died before prctl took effect
            os._exit(1)

    return preexec


# Every worker this process started and has not seen exit: killed at interpreter exit.
_LIVE: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()


@atexit.register
def _kill_live_workers() -> None:
    for worker in list(_LIVE):
        worker.kill_now()


def process_factory(settings: Settings, http: httpx.AsyncClient | None = None) -> WorkerFactory:
    """The factory the daemon uses: one `WorkerProcess` per load, from the settings."""
    command = worker_command(settings.worker_command)
    run_dir = orphans.run_dir(settings.home)

    def create(record: ModelRecord) -> WorkerProcess:
        worker = WorkerProcess(
            record,
            command=command,
            logs_dir=settings.logs_dir,
            run_dir=run_dir,
            max_batch=settings.worker_max_batch,
            max_queue=settings.worker_max_queue,
            http=http,
        )
        _LIVE.add(worker)
        return worker

    return create
