"""Many real processes writing at once lose nothing and never corrupt the database."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

from mlxctl.registry import Database, ModelRecord, Registry

PROCESSES = 8
WRITES = 50


def _writer(db_path: str, worker: int, start: mp.synchronize.Event) -> None:
    registry = Registry(Database(Path(db_path), busy_timeout=60))
    start.wait()
    for i in range(WRITES):
        registry.add(ModelRecord(slug=f"w{worker}-{i}", cache_path=f"/m/{worker}/{i}"))
        # A read-modify-write on one shared row: BEGIN IMMEDIATE must serialise it.
        with registry.db.write() as conn:
            extra = json.loads(
                conn.execute("SELECT extra FROM models WHERE slug = 'shared'").fetchone()[0]
            )
            extra["count"] = extra.get("count", 0) + 1
            conn.execute("UPDATE models SET extra = ? WHERE slug = 'shared'", (json.dumps(extra),))


def test_parallel_writers_lose_no_update(tmp_path: Path) -> None:
    db_path = tmp_path / "registry.db"
    registry = Registry(Database(db_path))
    registry.add(ModelRecord(slug="shared", cache_path="/shared"))
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(db_path), n, start)) for n in range(PROCESSES)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=180)
        assert p.exitcode == 0
    slugs = {r.slug for r in registry.list()}
    expected = {f"w{w}-{i}" for w in range(PROCESSES) for i in range(WRITES)}
    assert expected <= slugs and len(slugs) == PROCESSES * WRITES + 1
    assert registry.get("shared").extra["count"] == PROCESSES * WRITES  # type: ignore[union-attr]
    assert registry.db.integrity_check() == "ok"
