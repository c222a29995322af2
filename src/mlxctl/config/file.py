"""The whole config file validated: a `ConfigFile`, or one ConfigError naming the line.

`source.py` reads the YAML; here every section is checked (the `settings:` section
against the declared settings), so a reload can refuse a file before applying any of it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from mlxctl.config.schema import ConfigFile
from mlxctl.config.source import Loaded, load_yaml, parse_yaml
from mlxctl.settings import Settings


def read_config(path: Path) -> ConfigFile | None:
    """The file at `path` validated (None when there is none); ConfigError when bad."""
    loaded = load_yaml(path)
    return None if loaded is None else validate(loaded)


def parse_config(text: str, source: str = "config.yaml") -> ConfigFile:
    return validate(parse_yaml(text, source))


def validate(loaded: Loaded) -> ConfigFile:
    """Every section of `loaded`, checked; ConfigError names the first field at fault."""
    try:
        config = ConfigFile.model_validate(loaded.data)
    except ValidationError as e:
        first = e.errors()[0]
        raise loaded.error(
            tuple(first["loc"]), first["msg"].removeprefix("Value error, ")
        ) from None
    Settings.layered({}, loaded)  # the settings section, by the settings' own rules
    return config
