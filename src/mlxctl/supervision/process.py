"""One supervised worker process, of any kind: the one door through which the daemon
runs, checks and stops the processes that serve models.

    new ─start()─▶ loading ─wait_ready()─▶ ready ─stop()─▶ unloading ─▶ exited
                      └────────── exits, fails or times out ──────────▶ failed
    adopt() ─▶ ready  (a slot worker a previous daemon started)

The process is `mlxctl worker MODEL` or the model's external server command
(`command.child_argv`), run through the launcher (`launch.py`: rotating log pump,
death with the daemon) in its own process group, with `cwd=MLXCTL_HOME` and an
environment without secrets. What differs between an on-demand worker and a slot
worker is only its `Placement`: a free port and a life tied to the daemon, or a
fixed port and its own session that a later daemon adopts.

Checks: a worker is ready only when `/health` says `ok` *and* comes from our process
(its pid and the per-start nonce it got in its environment; for an external server,
the port's listener is in our process group), so a process squatting the port never
gets a prompt. Once ready, `/health` is probed every `liveness_interval` seconds; a
worker silent for `liveness_timeout` seconds (hung, SIGSTOPped) is SIGKILLed, its exit
noticed like a crash. A task waits on the process's exit, so it is seen at once.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import httpx

from mlxctl.backend import backend_of
from mlxctl.httpguard import write_key_file
from mlxctl.model_options import OptionsSource
from mlxctl.registry import ModelRecord
from mlxctl.settings import Settings
from mlxctl.sharding import launch as sharded
from mlxctl.supervision import logtail, pidfile, probe
from mlxctl.supervision.base import LoadError, ProcessState
from mlxctl.supervision.command import (
    child_argv,
    child_env,
    default_command,
    worker_command,
)
from mlxctl.supervision.handle import ProcessHandle
from mlxctl.supervision.health import Health, external_health, worker_health
from mlxctl.supervision.launch import Launch
from mlxctl.supervision.pidfile import PidRecord

log = logging.getLogger("mlxctl.supervision")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the worker binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def connect_url(host: str, port: int) -> str:
    """Where to reach a server listening on `host` (a wildcard means this machine)."""
    target = "127.0.0.1" if host in ("0.0.0.0", "", "*", "::") else host
    target = f"[{target}]" if ":" in target else target
    return f"http://{target}:{port}"


@dataclass(frozen=True)
class Placement:
    """Where a worker listens and how long it lives: all an on-demand worker and a slot
    worker differ by (besides who may stop it)."""

    host: str = "127.0.0.1"
    port: int | None = None  # None: a free port, chosen at start
    detached: bool = False  # its own session, outliving the daemon (a slot worker)
    name: str | None = None  # pid-file and log name; default: the model's slug

    @classmethod
    def slot(cls, port: int, host: str) -> Placement:
        return cls(host=host, port=port, detached=True, name=f"slot-{port}")


@dataclass(frozen=True)
class SupervisionConfig:
    """What every child gets, from the settings (tests build one directly)."""

    home: Path
    command: list[str] = field(default_factory=default_command)
    options: OptionsSource = field(default_factory=OptionsSource)
    environ: Mapping[str, str] | None = None  # None: the daemon's own, read at each start
    api_key: str | None = None
    key_file: Path | None = None
    log_max_bytes: int = 50 << 20
    log_backups: int = 5
    liveness_interval: float = 5.0
    liveness_timeout: float = 30.0

    @classmethod
    def from_settings(
        cls, settings: Settings, options: OptionsSource | None = None
    ) -> SupervisionConfig:
        """Writes the workers' 0600 key file when the daemon has a key (a previous
        daemon's is removed: the workers it started read theirs when they started)."""
        key = settings.api_key
        run = settings.home / "run"
        for stale in run.glob("key-*"):
            stale.unlink(missing_ok=True)
        key_file = write_key_file(run, key) if key else None
        return cls(
            home=settings.home,
            command=worker_command(settings.worker_command),
            options=options or OptionsSource.from_settings(settings),
            api_key=key,
            key_file=key_file,
            log_max_bytes=settings.log_max_bytes,
            log_backups=settings.log_backups,
            liveness_interval=settings.worker_liveness_interval,
            liveness_timeout=settings.worker_liveness_timeout,
        )

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    def pid_dir(self, placement: Placement) -> Path:
        return pidfile.run_dir(self.home, "slots" if placement.detached else "workers")

    def pid_file(self, placement: Placement, slug: str = "") -> Path:
        return pidfile.path(self.pid_dir(placement), placement.name or slug)

    def log_path(self, placement: Placement, slug: str = "") -> Path:
        return self.logs_dir / f"{placement.name or slug}.log"


class WorkerProcess:
    """A process serving one model on a local port (see the module docstring)."""

    def __init__(
        self,
        record: ModelRecord,
        config: SupervisionConfig,
        placement: Placement | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.slug = record.slug
        self.record = record
        self.placement = placement or Placement()
        self.name = self.placement.name or record.slug
        self._config = config
        self._http = http
        self._sharded = config.options.for_model(record).shard is not None  # as started
        self._state: ProcessState = "new"
        self._port = self.placement.port
        self._handle: ProcessHandle | None = None
        self._nonce: str | None = None
        self._exited = asyncio.Event()
        self._failure: str | None = None
        self._verdict: str | None = None  # why the supervisor itself ended it
        self._liveness: asyncio.Task[None] | None = None
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
        return connect_url(self.placement.host, self._port or 0)

    @property
    def pid(self) -> int | None:
        return self._handle.pid if self._handle is not None else None

    @property
    def returncode(self) -> int | None:
        return self._handle.returncode if self._handle is not None else None

    @property
    def log_path(self) -> Path:
        return self._config.log_path(self.placement, self.slug)

    @property
    def external(self) -> bool:
        """An OpenAI server of another kind: a `register --command`, or a sharded model's
        `mlx_lm.server` (rank 0); checked by its port's listener, never sent the key."""
        return backend_of(self.record).external or self._sharded

    @property
    def headers(self) -> dict[str, str]:
        """What every call to this worker carries: the key (never sent to an external server)."""
        key = self._config.api_key
        return {"Authorization": f"Bearer {key}"} if key and not self.external else {}

    def argv(self) -> list[str]:
        assert self._port is not None
        config = self._config
        key_file = config.key_file if config.api_key else None
        host = self.placement.host
        options = config.options.for_model(self.record)
        run_dir = config.home / "run"
        return child_argv(self.record, config.command, options, host, self._port, key_file, run_dir)

    # Lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the process; LoadError when it cannot start (nothing is left running)."""
        if self._state != "new":
            raise LoadError(f"worker for '{self.slug}' was already started")
        self._state = "loading"
        if self._port is None:
            self._port = free_port()
        argv = self.argv()
        what = f"cannot start the worker ({shlex.join(argv[:4])})"
        environ = os.environ if self._config.environ is None else self._config.environ
        if shutil.which(argv[0], path=environ.get("PATH")) is None:
            self._never_started(f"{what}: {argv[0]} is not an executable on PATH")
        self._nonce = None if self.external else secrets.token_hex(16)
        config, detached = self._config, self.placement.detached
        tied_to = None if detached else os.getpid()
        log_path = str(self.log_path)
        launch = Launch(log_path, config.log_max_bytes, config.log_backups, tied_to, argv)
        try:
            config.home.mkdir(parents=True, exist_ok=True)
            with logtail.open_with_header(self.log_path, argv) as logfile:
                popen = subprocess.Popen(
                    launch.argv(sys.executable),
                    stdin=subprocess.DEVNULL,
                    stdout=logfile,
                    stderr=logfile,
                    env=child_env(environ, self._nonce),
                    cwd=config.home,
                    start_new_session=True,
                )
        except OSError as e:
            self._never_started(f"{what}: {e}")
        self._handle = ProcessHandle(popen.pid, popen, group=True, on_exit=self._on_exit)
        self.started_at = time.time()
        if not detached:
            _LIVE.add(self)
        await self._record(argv[0])

    async def wait_ready(self, timeout: float) -> None:
        """Poll /health (quickly at first) until `ok` from our process; an exit cuts it short."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.02
        async with self._client() as client:
            while True:
                if self._exited.is_set():
                    await self._log_drained()
                    raise LoadError(self._fail(self.exit_message()))
                health = await self._health(client)
                if health.status == "ok":
                    await self._check_identity(health)
                    self._state = "ready"
                    self._liveness = loop.create_task(self._watch_liveness())
                    return
                if health.status == "failed":
                    message = f"the model failed to load: {health.error}"
                    raise LoadError(self._fail(logtail.with_log(message, self.log_path)))
                if loop.time() >= deadline:
                    message = f"not ready after {timeout:g} s (load timeout)"
                    raise LoadError(self._fail(logtail.with_log(message, self.log_path)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._exited.wait(), delay)
                delay = min(delay * 1.5, 0.25)

    @classmethod
    def adopt(
        cls,
        record: ModelRecord,
        config: SupervisionConfig,
        placement: Placement,
        found: PidRecord,
        http: httpx.AsyncClient | None = None,
    ) -> WorkerProcess:
        """Take over a ready process a previous daemon started (identity checked by the
        caller with `recognise`); its exit and liveness are watched from now on."""
        worker = cls(record, config, placement, http)
        worker._port, worker._nonce = found.port, found.nonce
        worker._handle = ProcessHandle(found.pid, None, group=True, on_exit=worker._on_exit)
        worker.started_at = found.created
        worker._state = "ready"
        worker._liveness = asyncio.get_running_loop().create_task(worker._watch_liveness())
        return worker

    async def wait_exit(self) -> int | None:
        await self._exited.wait()
        return self.returncode

    async def stop(self, grace: float) -> None:
        """SIGTERM to the group, SIGKILL after `grace` s; safe to call in any state."""
        self._stop_liveness()
        if self._handle is None:
            self._state = "failed" if self._state == "failed" else "exited"
            self._exited.set()
            return
        if not self._exited.is_set() and self._state != "failed":
            self._state = "unloading"
        await self._handle.terminate(grace)

    def detach(self) -> None:
        """Stop watching without stopping it (a slot worker when the daemon closes)."""
        self._stop_liveness()
        if self._handle is not None:
            self._handle.detach()

    def kill_now(self) -> None:
        """Synchronous last resort (atexit, daemon crash paths): SIGKILL the group."""
        if self._handle is not None:
            self._handle.kill_now()

    def exit_message(self) -> str:
        code = self.returncode
        if self._verdict is not None:
            return logtail.with_log(self._verdict, self.log_path)
        rank = sharded.first_rank_end(logtail.latest_run(self.log_path)) if self._sharded else None
        if rank is not None:  # mlx.launch stopped the others and exited 0
            return logtail.with_log(f"the sharded group stopped: {rank}", self.log_path)
        if self._handle is None:
            what = "did not start"
        elif code is None:
            what = "exited"  # adopted: its exit code went to its first parent
        elif code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            what = f"was killed by {name}"
        else:
            what = f"exited with code {code}"
        return logtail.with_log(f"the worker {what}", self.log_path)

    # Internals -----------------------------------------------------------------

    def _never_started(self, message: str) -> NoReturn:
        self._exited.set()
        raise LoadError(self._fail(message)) from None

    async def _record(self, argv0: str) -> None:
        """The pid file; a start that cannot write it (full disk) ends its process."""
        assert self._handle is not None
        pid = self._handle.pid
        record = PidRecord(
            name=self.name,
            pid=pid,
            argv0=argv0,
            created=pidfile.create_time(pid) or time.time(),
            port=self._port,
            model=self.slug,
            nonce=self._nonce,
            daemon_pid=None if self.placement.detached else os.getpid(),
        )
        try:
            pidfile.write(self._config.pid_dir(self.placement), record)
        except OSError as e:
            await self._give_up(f"cannot record the worker's pid file: {e}")

    async def _health(self, client: httpx.AsyncClient, timeout: float = 2.0) -> Health:
        probe_health = external_health if self.external else worker_health
        return await probe_health(client, self.base_url, timeout)

    async def _check_identity(self, health: Health) -> None:
        """Refuse a port answered by anyone but the process we started."""
        if self.external:
            found = await asyncio.to_thread(probe.listener, self._port or 0, self.placement.host)
            ours = found is not None and in_group(found.pid, self.pid)
            who = found.describe() if found is not None else "nobody"
        else:
            ours = health.is_ours(self.pid, self._nonce)
            who = f"pid {health.pid}"
        if not ours:
            await self._give_up(
                f"port {self._port} is answered by another process ({who}), not the one "
                f"mlxctl started (pid {self.pid}): refusing to send it prompts"
            )

    async def _give_up(self, message: str) -> NoReturn:
        """End the process for `message`, which is then also what its exit reports."""
        self._verdict = self._fail(message)
        await self.stop(0)
        raise LoadError(message)

    async def _watch_liveness(self) -> None:
        interval, timeout = self._config.liveness_interval, self._config.liveness_timeout
        if interval <= 0 or timeout <= 0:
            return
        loop = asyncio.get_running_loop()
        answered = loop.time()
        async with self._client() as client:
            while not self._exited.is_set():
                health = await self._health(client, timeout=interval)
                alive = health.status == "ok" and (self.external or health.pid == self.pid)
                if alive:
                    answered = loop.time()
                elif loop.time() - answered >= timeout and self._handle is not None:
                    what = f"stopped answering /health for {timeout:g} s and was killed"
                    self._verdict = f"the worker {what}"
                    log.warning("%s (pid %s) %s", self.name, self.pid, what)
                    self._handle.signal(signal.SIGKILL)
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._exited.wait(), interval)

    def _stop_liveness(self) -> None:
        if self._liveness is not None and self._liveness is not asyncio.current_task():
            self._liveness.cancel()

    async def _log_drained(self, limit: float = 2.0) -> None:
        # The log pump stays in the worker's process group until it has written the
        # last lines; the exit message quotes them, so wait (briefly) for it to go.
        if self.pid is None:
            return
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                os.killpg(self.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            await asyncio.sleep(0.02)

    def _on_exit(self) -> None:
        if self._state != "failed":
            self._state = "exited"
        if self.pid is not None:
            pidfile.forget(self._config.pid_dir(self.placement), self.name, self.pid)
        self._exited.set()

    def _fail(self, message: str) -> str:
        self._state = "failed"
        self._failure = message
        return message

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._http is not None:
            yield self._http
            return
        async with httpx.AsyncClient(trust_env=False) as client:
            yield client


def in_group(pid: int | None, leader: int | None) -> bool:
    """`pid` is `leader` or runs in the process group `leader` leads."""
    if pid is None or leader is None:
        return False
    try:
        return pid == leader or os.getpgid(pid) == leader
    except OSError:
        return False


def recognise(found: PidRecord | None, health: Health, listener: int | None) -> bool:
    """The port is served by the process a pid file describes (blocking: psutil).

    `listener` is the pid the OS shows on the port (None when it cannot tell); without
    it only the nonce in the answer proves it, which a squatter cannot know.
    """
    if found is None or not pidfile.matches(found):
        return False
    if listener is not None:
        return in_group(listener, found.pid)
    return health.is_ours(found.pid, found.nonce)


# Every tied worker this process started and has not seen exit: killed at interpreter exit.
_LIVE: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()


@atexit.register
def _kill_live_workers() -> None:
    for worker in list(_LIVE):
        worker.kill_now()


def process_factory(
    config: SupervisionConfig, http: httpx.AsyncClient | None = None
) -> Callable[[ModelRecord], WorkerProcess]:
    """The factory the daemon's scheduler uses: one on-demand `WorkerProcess` per load."""

    def create(record: ModelRecord) -> WorkerProcess:
        return WorkerProcess(record, config, Placement(), http)

    return create
