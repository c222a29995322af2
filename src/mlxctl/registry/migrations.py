"""Named, ordered schema migrations. Never edit one that has shipped: add a new one.

Each migration runs inside the writer's `BEGIN IMMEDIATE` transaction together
with its bookkeeping row, so a crash leaves it either fully applied or not at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from mlxctl.registry.db import Database

Migration = Callable[[sqlite3.Connection], None]


def m001_models(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE models (
            slug TEXT PRIMARY KEY
                CHECK (length(slug) BETWEEN 1 AND 128
                       AND slug NOT GLOB '*[^a-z0-9._:-]*'
                       AND substr(slug, 1, 1) GLOB '[a-z0-9]'),
            repo_id TEXT,
            model_id TEXT,
            cache_path TEXT NOT NULL CHECK (cache_path <> ''),
            format TEXT NOT NULL,
            port INTEGER UNIQUE CHECK (port IS NULL OR port BETWEEN 1 AND 65535),
            chat_template TEXT,
            tool_call_parser TEXT,
            reasoning_parser TEXT,
            model_type TEXT,
            parameters INTEGER CHECK (parameters IS NULL OR parameters >= 0),
            size_bytes INTEGER CHECK (size_bytes IS NULL OR size_bytes >= 0),
            quant_bits INTEGER,
            quant_group_size INTEGER,
            context_length INTEGER,
            kv_bytes_per_token INTEGER,
            revision TEXT,
            source TEXT NOT NULL DEFAULT 'manual',
            extra TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(extra)),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX models_repo_id ON models (repo_id)")
    conn.execute("CREATE INDEX models_cache_path ON models (cache_path)")


MIGRATIONS: list[tuple[str, Migration]] = [
    ("m001_models", m001_models),
]


def migrate(db: Database) -> list[str]:
    """Apply the pending migrations in order; returns the names applied now."""
    applied_now: list[str] = []
    with db.write() as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _migrations"
            " (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
        for name, migration in MIGRATIONS:
            if name in done:
                continue
            migration(conn)
            conn.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat()),
            )
            applied_now.append(name)
    return applied_now


def applied(db: Database) -> list[str]:
    return [row[0] for row in db.read("SELECT name FROM _migrations ORDER BY rowid")]
