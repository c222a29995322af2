"""The config a running daemon uses, and its reload without dropping anything.

A reload (file change, SIGHUP, `POST /api/admin/config/reload`) reads and validates
the file first: a bad file raises `ConfigError` and the old config stays in force.
A good one is applied on the daemon's event loop: routing aliases, presets, sampling
defaults, keep-alive and the scheduler's limits take effect at once; a loaded model
whose worker was started with other options (context, batch, KV bits, engine, ...) is
drained and restarted (`Scheduler.restart`): its requests finish, new ones wait for
the new worker. Settings read only at start are named in the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mlxctl.config.file import read_config, validate
from mlxctl.config.routing import choose
from mlxctl.config.schema import ConfigFile
from mlxctl.config.source import ConfigError, config_path, load_yaml
from mlxctl.errors import InvalidInput, NotFound
from mlxctl.model_map import ModelMap, is_pattern
from mlxctl.model_options import ModelOptions, OptionsSource, Records
from mlxctl.registry import ModelRecord, Registry
from mlxctl.registry.resolve import resolve_reference
from mlxctl.scheduler import Scheduler, SchedulerConfig
from mlxctl.settings import Settings
from mlxctl.sharding.spec import ShardSettings

log = logging.getLogger("mlxctl.config")

# Settings a reload applies at once; any other change needs a daemon restart.
LIVE_SETTINGS = frozenset(
    {
        *("keep_alive", "memory_budget", "max_loaded_models", "max_queue", "queue_timeout"),
        *("load_timeout", "load_cooldown", "worker_stop_grace", "kv_context"),
        *("worker_max_batch", "worker_max_queue", "worker_prompt_cache_entries"),
        *("worker_prompt_cache_bytes", "worker_context", "allow_insecure_pull"),
        *("worker_first_byte_timeout", "worker_idle_timeout"),
        *("allowed_hosts", "origins", "max_body_bytes"),  # the daemon's guard, per request
    }
)


@dataclass
class ReloadReport:
    """What a reload changed."""

    path: str
    settings: list[str] = field(default_factory=list)  # applied at once
    restart_required: list[str] = field(default_factory=list)  # read at start only
    restarted: list[str] = field(default_factory=list)  # models drained and restarted
    aliases: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reloaded": True,
            "path": self.path,
            "settings": self.settings,
            "restart_required": self.restart_required,
            "restarted": self.restarted,
            "aliases": self.aliases,
        }


class LiveConfig:
    """The daemon's config in force: aliases, presets and per-model options, reloadable."""

    def __init__(
        self,
        settings: Settings,
        options: OptionsSource,
        environ: Mapping[str, str],
        config: ConfigFile | None,
        path: Path,
    ) -> None:
        self.settings = settings
        self.options = options
        self.environ = dict(environ)
        self.path = path
        self.config = config
        self.scheduler: Scheduler | None = None
        self.registry: Registry | None = None
        self.on_settings: list[Callable[[Settings], None]] = []
        self._lock = asyncio.Lock()

    @classmethod
    def start(
        cls, settings: Settings, environ: Mapping[str, str], records: Records | None = None
    ) -> LiveConfig:
        """Read the file (ConfigError when bad: the daemon does not start on it); a draft
        model a section names is counted from `records` (the registry)."""
        path = config_path(environ, settings.home)
        config = read_config(path)
        options = OptionsSource.from_settings(settings, config, records)
        return cls(settings, options, environ, config, path)

    # Reads, on the event loop -----------------------------------------------------

    def alias(self, name: str) -> list[str] | None:
        return None if is_pattern(name) else self.alias_names().get(name)

    def alias_names(self) -> dict[str, list[str]]:
        """Named aliases (pattern aliases match names instead: `patterns`)."""
        aliases = self.config.aliases if self.config is not None else {}
        return {k: v for k, v in aliases.items() if not is_pattern(k)}

    def patterns(self) -> ModelMap:
        """Pattern aliases: MLXCTL_MODEL_MAP's first, then config.yaml's in its order."""
        aliases = self.config.aliases if self.config is not None else {}
        return ModelMap.parse(self.settings.model_map) + ModelMap.of_aliases(aliases)

    def route(self, name: str, records: list[ModelRecord]) -> ModelRecord | None:
        """The model a routing alias sends this request to; None if `name` is no alias."""
        members = self.alias(name)
        return None if members is None else self._pick(name, members, records)

    def route_pattern(self, name: str, records: list[ModelRecord]) -> ModelRecord | None:
        """The model a pattern alias sends `name` to; None if no pattern matches it."""
        found = self.patterns().match(name)
        return None if found is None else self._pick(found[0], list(found[1]), records)

    def _pick(self, name: str, members: list[str], records: list[ModelRecord]) -> ModelRecord:
        """Alias `name`'s member that answers now (`config.routing.choose`)."""
        candidates = []
        for member in members:
            try:
                record = resolve_reference(member, records)
            except Exception:
                continue  # a member not registered (yet): skipped, the others serve
            if self.scheduler is None:  # no daemon around it: the first registered member
                return record
            candidates.append((record, self.scheduler.placement(record)))
        if not candidates:
            raise NotFound(
                f"no model of alias '{name}' is registered: {', '.join(members)}",
                hint="register one of them, or change the alias in config.yaml",
            )
        return choose(candidates)

    def listed(self, records: list[ModelRecord]) -> list[tuple[str, list[str], ModelRecord]]:
        """Aliases to list beside the models: (alias, its models, the first registered one).
        An alias named like a model, or with no model registered, is left out."""
        found = []
        for name, members in self.alias_names().items():
            if any(name in (r.slug, r.repo_id, r.model_id) for r in records):
                continue
            first = next((r for m in members for r in _named(m, records)), None)
            if first is not None:
                found.append((name, members, first))
        return found

    def sampling(self, record: ModelRecord, preset: str | None) -> dict[str, Any]:
        """Request defaults for `record`, with a per-request `preset`'s sampling over them."""
        values = dict(self.options.for_model(record).sampling)
        if preset is not None:
            if self.config is None:
                raise InvalidInput(f"no preset named '{preset}'", hint="no config file is in use")
            chosen = self.config.preset(preset).sampling
            values.update(chosen.model_dump(exclude_none=True) if chosen else {})
        return values

    def options_of(self, slug: str) -> dict[str, Any] | None:
        """A model's options as `ps` shows them (None for a model not registered)."""
        record = self.registry.get(slug) if self.registry is not None else None
        return None if record is None else self.options.for_model(record).as_dict()

    async def use_preset(self, record: ModelRecord, preset: str) -> bool:
        """Run `record` with `preset` over its config (`mlxctl load --preset`): a loaded
        worker started otherwise is drained and restarted. True when one was."""
        if self.config is None:
            raise InvalidInput(f"no preset named '{preset}'", hint=f"no config file at {self.path}")
        self.config.preset(preset)  # InvalidInput names the presets there are
        before = self.options.for_model(record).load_time()
        self.options.load_presets[record.slug] = preset
        return await self._restart_if_changed(record, before)

    async def use_shard(self, record: ModelRecord, shard: ShardSettings | None) -> bool:
        """Run `record` sharded as `shard` (`mlxctl load --hosts`; None: as its config
        says): a loaded worker started otherwise is drained and restarted. True when one was."""
        before = self.options.for_model(record).load_time()
        if shard is None:
            self.options.load_shards.pop(record.slug, None)
        else:
            self.options.load_shards[record.slug] = shard
        return await self._restart_if_changed(record, before)

    async def _restart_if_changed(self, record: ModelRecord, before: dict[str, Any]) -> bool:
        if self.scheduler is None or self.options.for_model(record).load_time() == before:
            return False
        return await self.scheduler.restart(record.slug)

    # Reload --------------------------------------------------------------------------

    def check(self) -> ConfigFile | None:
        """Validate the file as it is now, without applying it."""
        return read_config(self.path)

    async def reload(self) -> ReloadReport:
        """Validate and apply the file; on ConfigError nothing changes."""
        async with self._lock:
            try:
                loaded = load_yaml(self.path)
                config = validate(loaded) if loaded is not None else None
                settings = Settings.layered(self.environ, loaded)
            except ConfigError as e:
                log.error("config reload refused: %s (the config in use is unchanged)", e.message)
                raise
            return await self._apply(config, settings)

    async def _apply(self, config: ConfigFile | None, settings: Settings) -> ReloadReport:
        report = ReloadReport(str(self.path))
        old_settings = self.settings
        changed = [
            f.name
            for f in fields(Settings)
            if getattr(old_settings, f.name) != getattr(settings, f.name)
        ]
        report.settings = [n for n in changed if n in LIVE_SETTINGS]
        report.restart_required = [n for n in changed if n not in LIVE_SETTINGS]
        live = {n: getattr(settings, n) for n in report.settings}
        applied = _replace(old_settings, live)
        loaded = await self._loaded_records()
        before = {r.slug: self.options.for_model(r).load_time() for r in loaded}
        presets = config.presets if config is not None else {}
        for slug, preset in list(self.options.load_presets.items()):
            if preset not in presets:  # gone from the file: the model runs without it
                log.warning("preset %s of %s is no longer in %s", preset, slug, self.path)
                del self.options.load_presets[slug]
        self.options.use(ModelOptions.from_settings(applied), config)
        self.config, self.settings = config, applied
        report.aliases = sorted(config.aliases) if config is not None else []
        if self.scheduler is not None:
            if any(n in report.settings for n in _SCHEDULER_SETTINGS):
                self.scheduler.reconfigure(SchedulerConfig.from_settings(applied))
            for record in loaded:
                differs = self.options.for_model(record).load_time() != before[record.slug]
                if differs and await self.scheduler.restart(record.slug):
                    report.restarted.append(record.slug)
        for callback in self.on_settings:
            callback(applied)
        await self.preload()
        log.info(
            "config reloaded from %s: settings %s, restarted %s",
            self.path,
            report.settings,
            report.restarted,
        )
        return report

    async def preload(self) -> None:
        """Start loading the models whose section says `preload: true` (not waiting)."""
        if self.config is None or self.scheduler is None or self.registry is None:
            return
        scheduler = self.scheduler
        for record in self.registry.list():
            if self.options.for_model(record).preload:
                task = asyncio.create_task(_preload(scheduler, record))
                _BACKGROUND.add(task)
                task.add_done_callback(_BACKGROUND.discard)

    async def _loaded_records(self) -> list[ModelRecord]:
        if self.scheduler is None or self.registry is None:
            return []
        status = await self.scheduler.status()
        slugs = {m.model for m in status.models if m.state in ("ready", "loading")}
        return [r for r in self.registry.list() if r.slug in slugs]

    # Triggers --------------------------------------------------------------------------

    def follow(
        self, scheduler: Scheduler, registry: Registry, on_settings: Callable[[Settings], None]
    ) -> Following:
        """Serve this daemon: reload on file change and SIGHUP until `aclose()`."""
        self.scheduler, self.registry = scheduler, registry
        self.on_settings.append(on_settings)
        return Following(self)

    def install_sighup(self) -> None:
        """SIGHUP reloads (where the loop can take signals: the main thread, POSIX)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._reload_soon, "SIGHUP")

    def remove_sighup(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    def _reload_soon(self, why: str) -> None:
        task = asyncio.get_running_loop().create_task(self._reload_logged(why))
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    async def _reload_logged(self, why: str) -> None:
        try:
            await self.reload()
        except ConfigError:
            pass  # logged by reload; the old config stays
        except Exception:
            log.exception("config reload (%s) failed", why)

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload whenever the file changes, until `stop` is set."""
        from watchfiles import awatch

        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        name = self.path.name
        async for changes in awatch(
            folder, stop_event=stop, debounce=200, step=50, recursive=False
        ):
            if any(Path(p).name == name for _, p in changes):
                await self._reload_logged("file changed")


class Following:
    """The config file's watcher task and SIGHUP handler, for the daemon's lifetime."""

    def __init__(self, live: LiveConfig) -> None:
        self.live, self.stop = live, asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        if live.settings.config_watch:
            self.task = asyncio.create_task(live.watch(self.stop), name="mlxctl-config-watch")
        live.install_sighup()

    async def aclose(self) -> None:
        self.live.remove_sighup()
        self.stop.set()
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task


_SCHEDULER_SETTINGS = frozenset(
    {
        *("keep_alive", "memory_budget", "max_loaded_models", "max_queue", "queue_timeout"),
        *("load_timeout", "load_cooldown", "worker_stop_grace"),
    }
)
_BACKGROUND: set[asyncio.Task[None]] = set()


def _named(name: str, records: list[ModelRecord]) -> list[ModelRecord]:
    try:
        return [resolve_reference(name, records)]
    except Exception:
        return []


async def _preload(scheduler: Scheduler, record: ModelRecord) -> None:
    try:
        await scheduler.load(record)
    except Exception as e:
        log.warning("preloading %s failed: %s", record.slug, e)


def _replace(settings: Settings, values: Mapping[str, Any]) -> Settings:
    return replace(settings, **values)
