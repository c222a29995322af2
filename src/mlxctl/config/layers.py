"""The daemon settings in layers: defaults, then `config.yaml`'s `settings:`, then the
environment (an environment variable that is set always wins).

`settings.py` declares every setting once (a dataclass whose fields carry their
variable); here pydantic-settings merges and converts the layers with a model built
from those declarations, and `sources` says which layer each value came from.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import MISSING, Field, fields
from functools import cache
from typing import Any, Literal

from pydantic import Field as PydanticField
from pydantic import ValidationError, create_model
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

Source = Literal["default", "file", "env"]
# Where the file lives is decided before the file is read: these are never in it.
NOT_IN_FILE = frozenset({"home", "config_file"})


class SettingError(ValueError):
    """One bad setting: `origin` says whether the environment or the file gave it."""

    def __init__(self, name: str, env: str, message: str, origin: Source, raw: object) -> None:
        super().__init__(message)
        self.name, self.env, self.message, self.origin, self.raw = name, env, message, origin, raw


# pydantic-settings builds its sources in a classmethod: the mapping for this call rides here.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("mlxctl_settings_environ", default=None)


class _Environment(EnvSettingsSource):
    """The environment source, over a given mapping (tests and child processes pass theirs)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = {name: value for name, value in environ.items() if value}  # "" is unset
        super().__init__(settings_cls, case_sensitive=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._environ


class _Layered(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="forbid")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier wins: the environment over the file (passed as init values).
        return (_Environment(settings_cls, _ENVIRON.get() or {}), init_settings)


@cache
def _model(settings_cls: type) -> type[_Layered]:
    hints = typing.get_type_hints(settings_cls)
    definitions: dict[str, Any] = {}
    for f in _fields(settings_cls):
        default = None if f.default is MISSING else f.default
        alias = f.metadata["env"]
        definitions[f.name] = (hints[f.name], PydanticField(default, validation_alias=alias))
    model: type[_Layered] = create_model("LayeredSettings", __base__=_Layered, **definitions)
    return model


def layered_values(
    settings_cls: type, environ: Mapping[str, str], file_settings: Mapping[str, Any]
) -> dict[str, Any]:
    """Every setting of `settings_cls`: environment over file over default. SettingError
    names the one at fault and where it came from."""
    env_of = {f.name: f.metadata["env"] for f in _fields(settings_cls)}
    for name in file_settings:
        if name not in env_of or name in NOT_IN_FILE:
            why = "is set by the environment only" if name in env_of else "is not a setting"
            raise SettingError(name, env_of.get(name, ""), why, "file", file_settings[name])
    token = _ENVIRON.set(environ)
    try:
        # Both layers keyed by variable, so the merge's order alone decides who wins.
        values = {env_of[name]: value for name, value in file_settings.items()}
        return _model(settings_cls)(**values).model_dump()
    except ValidationError as e:
        raise _setting_error(e, env_of, environ, file_settings) from None
    finally:
        _ENVIRON.reset(token)


def sources(
    settings_cls: type, environ: Mapping[str, str], file_settings: Mapping[str, Any]
) -> dict[str, Source]:
    """Where each setting's value comes from."""
    found: dict[str, Source] = {}
    for f in _fields(settings_cls):
        if environ.get(f.metadata["env"]):
            found[f.name] = "env"
        elif f.name in file_settings:
            found[f.name] = "file"
        else:
            found[f.name] = "default"
    return found


def _fields(settings_cls: type) -> tuple[Field[Any], ...]:
    return fields(settings_cls)


def _setting_error(
    error: ValidationError,
    env_of: Mapping[str, str],
    environ: Mapping[str, str],
    file_settings: Mapping[str, Any],
) -> SettingError:
    first = error.errors()[0]
    where = str(first["loc"][0]) if first["loc"] else ""
    name = next((n for n, env in env_of.items() if where in (env, n)), where)
    env = env_of.get(name, "")
    message = first["msg"].removeprefix("Value error, ")
    if environ.get(env):
        return SettingError(name, env, message, "env", environ[env])
    return SettingError(name, env, message, "file", file_settings.get(name))
