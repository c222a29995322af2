"""Schemathesis against a real `mlxctl serve`: every generated request gets a 2xx/4xx in
its dialect's envelope, conforming to /openapi.json, and the daemon's memory stays bounded.

Two daemons on the tiny factory model, both behind an API key (so `ignored_auth` checks
every route refuses a request without it):
  - A serves everything but the destructive routes, with real workers;
  - B, with its own home, takes `/api/delete`, `/api/copy`, `/api/pull`, `/api/create`,
    `/api/push` and the registry and store operations (`/api/admin/models…`, `…/registry…`,
    `…/store…`, `…/jobs`; the network
    refused through a dead proxy, so a pull fails fast), so nothing they do reaches A.
`st run` runs the examples, coverage and fuzzing phases with every check; the hooks in
`fuzz_hooks.py` aim generated bodies at the served model and excuse only the refusals a
static document cannot foresee. The daemons' own /metrics count the requests.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlxctl.library.inventory import register_path
from mlxctl.operations import OPERATIONS
from mlxctl.registry import open_registry
from mlxctl.settings import Settings
from tests.api.conftest import Daemon, StartDaemon, real_worker_command
from tests.slots.conftest import slot_env  # noqa: F401

pytestmark = pytest.mark.slow

KEY = "fuzz-key"
MODEL = "tiny"
SEED = int(os.environ.get("MLXCTL_FUZZ_SEED", "20251203"))
MAX_EXAMPLES = int(os.environ.get("MLXCTL_FUZZ_EXAMPLES", "10"))
# The registry and store operations too: they delete, import over and prune the store.
# Jobs run the same operations (pull, push, create, verify) in the background.
DESTRUCTIVE = (
    "/api/delete",
    "/api/copy",
    "/api/pull",
    "/api/create",
    "/api/push",
    "/api/admin/jobs",
    *(op.path for op in OPERATIONS),
)
# Streams that end only when the client leaves: each call would wait out the request
# timeout. tests/dashboard and tests/api/llamacpp/test_models.py read them.
ENDLESS = ("/api/admin/events", "/models/sse")
# Daemon + its workers (a real one per model, slot workers if the fuzzer starts one).
RSS_LIMIT = 2 << 30
# What the daemon process alone may grow by over the run (it keeps no per-request state).
DAEMON_GROWTH_LIMIT = 200 << 20
# A dead proxy: every outgoing connection is refused at once.
NO_NETWORK = {
    "HF_ENDPOINT": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "ALL_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "",
}


def register(home: Path, model: Path) -> None:
    """`MODEL` in `home`, answering 4 tokens unless asked otherwise (ModelSpec PARAMETER)."""
    registry = open_registry(dataclasses.replace(Settings.from_env(), home=home))
    try:
        record = register_path(registry, model, slug=MODEL)
        options = {**record.extra, "options": {"num_predict": 4}}
        registry.add_many([dataclasses.replace(record, extra=options)])
    finally:
        registry.db.close()


class Memory:
    """Samples the RSS of a daemon and everything under it until stopped."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.daemon: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Memory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            total = own = self.process.memory_info().rss
            for child in self.process.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            self.peak = max(self.peak, total)
            self.daemon.append(own)


def schemathesis(daemon: Daemon, workdir: Path, name: str, *select: str) -> dict[str, Any]:
    """`st run` against `daemon` (operations filtered by `select`); its JSON report."""
    schema, report = workdir / f"{name}-openapi.json", workdir / f"{name}-report.json"
    answer = daemon.client().get("/openapi.json")
    assert answer.status_code == 200, answer.text
    schema.write_bytes(answer.content)
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", str(schema)),
        *("--url", daemon.url, "--header", f"Authorization: Bearer {KEY}"),
        *("--checks", "all", "--phases", "examples,coverage,fuzzing"),
        *("--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1"),
        # A hang is a failure too: no request may take this long on the tiny model.
        *("--request-timeout", "30", "--max-response-time", "25"),
        *("--generation-database", "none", "--max-failures", "100"),
        *("--output-sanitize", "false", "--report", "json", "--report-json-path", str(report)),
        *select,
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parents[3]),
        "SCHEMATHESIS_HOOKS": "tests.api.openapi.fuzz_hooks",
        "MLXCTL_FUZZ_MODEL": MODEL,
        "MLXCTL_FUZZ_SEED": str(SEED),
        "MLXCTL_FUZZ_DROPPED": str(workdir / "dropped.jsonl"),
    }
    # In `workdir`: st keeps a .schemathesis/ cache in its working directory.
    run = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert report.exists(), run.stdout + run.stderr
    result: dict[str, Any] = json.loads(report.read_text())
    result["output"] = run.stdout + run.stderr
    return result


def statuses(daemon: Daemon) -> Counter[int]:
    """Requests the daemon answered, by status, from its own /metrics."""
    text = daemon.client().get("/metrics").text
    counts: Counter[int] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "mlxctl_requests":
            for sample in family.samples:
                if sample.name == "mlxctl_requests_total":
                    counts[int(sample.labels["status"])] += int(sample.value)
    return counts


@pytest.fixture
def daemons(
    start_daemon: StartDaemon,
    tiny_models: dict[str, Path],
    isolated_home: Path,
    tmp_path: Path,
    slot_env: dict[str, str],  # noqa: F811 - a free slot range, and no slot left running after
) -> Iterator[tuple[Daemon, Daemon]]:
    other = tmp_path / "home-b"
    register(isolated_home, tiny_models["qwen2"])
    register(other, tiny_models["qwen2"])
    common = {**NO_NETWORK, "MLXCTL_API_KEY": KEY}
    a = start_daemon({**common, "MLXCTL_WORKER_COMMAND": real_worker_command()})
    b = start_daemon({**common, "MLXCTL_HOME": str(other)})
    yield a, b
    # Slot workers outlive their daemon: stop any the fuzzer started.
    a.client().post("/api/admin/slots/unload-all", json={"confirm": True})


def test_fuzz_every_route(
    daemons: tuple[Daemon, Daemon], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = daemons
    started = time.monotonic()
    loaded = a.client().post("/api/admin/load", json={"model": MODEL})
    assert loaded.status_code == 200, loaded.text
    exclude = [arg for path in (*DESTRUCTIVE, *ENDLESS) for arg in ("--exclude-path", path)]
    include = [arg for path in DESTRUCTIVE for arg in ("--include-path", path)]
    with Memory(a.proc.pid) as memory:
        served = schemathesis(a, tmp_path, "a", *exclude)
    destructive = schemathesis(b, tmp_path, "b", *include)
    seconds = time.monotonic() - started

    for daemon in (a, b):
        health = httpx.get(f"{daemon.url}/health", timeout=5)
        assert health.status_code == 200 and daemon.proc.poll() is None
    answered_a, answered_b = statuses(a), statuses(b)
    dropped = _dropped(tmp_path / "dropped.jsonl")
    with capsys.disabled():
        print(
            _summary(served, destructive, answered_a, answered_b, dropped, memory, seconds),
            flush=True,
        )

    for name, report in (("A", served), ("B", destructive)):
        assert report["exit_code"] == 0, f"daemon {name}:\n{report['output'][-20000:]}"
        assert not report["failures"] and not report["errors"], report["output"][-20000:]
        assert report["operations"]["tested"] == report["operations"]["selected"] > 0
    paths = a.client().get("/openapi.json").json()["paths"]  # a path may hold several methods
    left_out = sum(len(paths[path]) for path in (*DESTRUCTIVE, *ENDLESS))
    assert served["operations"]["selected"] + left_out == served["operations"]["total"]
    assert not [s for s in answered_a if s >= 500], answered_a
    # B's only 5xx: a pull whose registry the dead proxy refused.
    assert {s for s in answered_b if s >= 500} <= {503}, answered_b
    assert memory.peak < RSS_LIMIT, f"daemon + workers peaked at {memory.peak >> 20} MiB"
    growth = memory.daemon[-1] - min(memory.daemon[:5])
    assert growth < DAEMON_GROWTH_LIMIT, f"the daemon grew by {growth >> 20} MiB"


def _dropped(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    return Counter(json.loads(line)["reason"] for line in path.read_text().splitlines())


def _summary(
    served: dict[str, Any],
    destructive: dict[str, Any],
    answered_a: Counter[int],
    answered_b: Counter[int],
    dropped: Counter[str],
    memory: Memory,
    seconds: float,
) -> str:
    cases = served["test_cases"]["generated"] + destructive["test_cases"]["generated"]
    requests = sum(answered_a.values()) + sum(answered_b.values())
    by_status = Counter(answered_a) + Counter(answered_b)
    failures = len(served["failures"]) + len(destructive["failures"])
    lines = [
        f"\nfuzz: {cases} generated cases, {requests} requests answered in {seconds:.0f} s "
        f"(seed {SEED}, {MAX_EXAMPLES} examples per operation): {failures} failures",
        "  by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())),
        f"  peak RSS of daemon + workers: {memory.peak >> 20} MiB; the daemon alone "
        f"{min(memory.daemon[:5]) >> 20} -> {memory.daemon[-1] >> 20} MiB",
    ]
    lines += [f"  excused ({n}): {reason}" for reason, n in dropped.most_common()]
    return "\n".join(lines)
