"""The SQLite connection: WAL, one writer, `BEGIN IMMEDIATE`.

Writes go through `Database.write()`, which takes the write lock up front so two
processes never interleave a read-modify-write; SQLite's busy timeout makes the
second writer wait instead of failing. Readers never block writers in WAL mode.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlxctl.errors import Unavailable


class Database:
    def __init__(self, path: Path, busy_timeout: float = 30.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        # One writer per process; across processes SQLite's own lock serialises.
        self._write_lock = threading.Lock()
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            private_dir(self.path.parent)
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=True
            )
        except (OSError, sqlite3.Error) as e:
            raise Unavailable(f"cannot open the registry at {self.path}: {e}") from e
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise Unavailable(f"the registry at {self.path} cannot use WAL mode (got {mode!r})")
        # FULL: a committed registry change survives power loss, not only kill -9.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all or nothing, serialised across threads and processes."""
        with self._write_lock:
            conn = self.connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def read(
        self, sql: str, params: tuple[object, ...] | dict[str, object] = ()
    ) -> list[sqlite3.Row]:
        return self.connection().execute(sql, params).fetchall()

    def integrity_check(self) -> str:
        return str(self.connection().execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def private_dir(path: Path) -> None:
    """Create `path` and its missing parents for their owner only (0700); MLXCTL_HOME
    holds credentials, prompts and commands. An existing folder keeps its mode."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
