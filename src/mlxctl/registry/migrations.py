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


def m002_slots(conn: sqlite3.Connection) -> None:
    """Fixed ports with stable aliases; `model` is the desired state, the rest is live state.

    Triggers keep `models.port` equal to the slot port in both directions, so one port
    holds one model and one model one port whichever table a writer touches.
    """
    conn.execute(
        """
        CREATE TABLE slots (
            port INTEGER PRIMARY KEY CHECK (port BETWEEN 1 AND 65535),
            alias TEXT NOT NULL UNIQUE CHECK (alias <> ''),
            model TEXT UNIQUE REFERENCES models (slug) ON UPDATE CASCADE ON DELETE SET NULL,
            pid INTEGER CHECK (pid IS NULL OR pid > 0),
            started_at TEXT,
            live_model TEXT,
            updated_at TEXT NOT NULL
        )
        """
    )
    # Slot → model: the assigned model's port follows its slot.
    conn.execute(
        """
        CREATE TRIGGER slots_model_port AFTER UPDATE OF model ON slots
        WHEN OLD.model IS NOT NEW.model
        BEGIN
            UPDATE models SET port = NULL WHERE slug = OLD.model AND port = OLD.port;
            UPDATE models SET port = NEW.port WHERE slug = NEW.model AND port IS NOT NEW.port;
        END
        """
    )
    # Model → slot: setting models.port to a slot port assigns that slot, and moves off the old one.
    for event, old_port in (("UPDATE OF port", "OLD.port"), ("INSERT", "NULL")):
        name = "models_port_slot_" + event.split()[0].lower()
        when = "WHEN OLD.port IS NOT NEW.port" if event != "INSERT" else "WHEN NEW.port IS NOT NULL"
        conn.execute(
            f"""
            CREATE TRIGGER {name} AFTER {event} ON models {when}
            BEGIN
                UPDATE slots SET model = NULL
                    WHERE model = NEW.slug AND port IS NOT NEW.port AND {old_port} IS NOT NULL;
                UPDATE slots SET model = NEW.slug
                    WHERE port = NEW.port AND model IS NOT NEW.slug;
            END
            """
        )


MIGRATIONS: list[tuple[str, Migration]] = [
    ("m001_models", m001_models),
    ("m002_slots", m002_slots),
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
