"""Reading `config.yaml` as YAML, and pointing at the line of a field.

The lowest layer of the config: `settings.py` reads the file's `settings:` section
through it, the whole file is validated above (`config/file.py`). The YAML is
composed into nodes too, so that an error's location (`models.qwen.max_batch`) maps
back to the line that holds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlxctl.errors import InvalidInput

CONFIG_ENV = "MLXCTL_CONFIG"


class ConfigError(InvalidInput):
    """An invalid config file: `where` is `path:line`, `field` the dotted field at fault."""

    def __init__(self, message: str, *, where: str, field: str | None = None) -> None:
        super().__init__(message, hint="fix the file; the config in use is unchanged")
        self.where = where
        self.field = field


@dataclass(frozen=True)
class Loaded:
    """A config file parsed as YAML: its data, its node tree (for lines), where it came from."""

    data: dict[str, Any]
    root: yaml.Node | None
    source: str

    def settings(self) -> dict[str, Any]:
        """The `settings:` section (a mapping, or ConfigError)."""
        section = self.data.get("settings") or {}
        if not isinstance(section, dict):
            raise self.error(("settings",), "must be a mapping of setting names to values")
        return section

    def error(self, loc: tuple[Any, ...], message: str) -> ConfigError:
        """The error for the field at `loc`, naming its line."""
        field = ".".join(str(part) for part in loc)
        line = line_of(self.root, loc)
        text = (
            f"{self.source}:{line}: {field}: {message}"
            if field
            else f"{self.source}:{line}: {message}"
        )
        return ConfigError(text, where=f"{self.source}:{line}", field=field or None)


def config_path(environ: Mapping[str, str], home: Path) -> Path:
    """$MLXCTL_CONFIG, else `config.yaml` in the home folder."""
    explicit = environ.get(CONFIG_ENV, "")
    return Path(explicit).expanduser() if explicit else home / "config.yaml"


def load_yaml(path: Path) -> Loaded | None:
    """The file at `path` as YAML (None when there is none); ConfigError when unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read: {e}", where=str(path)) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str = "config.yaml") -> Loaded:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark is not None else 1
        problem = e.problem or str(e)
        raise ConfigError(
            f"{source}:{line}: not valid YAML: {problem}", where=f"{source}:{line}"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}", where=source) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}:1: the file must be a mapping of sections", where=f"{source}:1"
        )
    return Loaded(data, root, source)


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """The line of the deepest node on the path `loc` (1-based)."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _child(node: yaml.Node, part: object) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                # A scalar's line is its key's (the same line, unless the value wraps).
                found: yaml.Node = value if not isinstance(value, yaml.ScalarNode) else key
                return found
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        child: yaml.Node = node.value[part]
        return child
    return None
