"""docs/config.md documents every field the file accepts, and nothing it does not; its
complete example is a valid file."""

from __future__ import annotations

import re
from pathlib import Path

from mlxctl.config.file import parse_config
from mlxctl.config.layers import NOT_IN_FILE
from mlxctl.config.schema import ConfigFile, ModelSection, Sampling
from mlxctl.settings import describe

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _table_fields(text: str, heading: str) -> set[str]:
    """The `field` names in the first column of the table under `heading`."""
    section = text.split(f"\n{heading}\n", 1)[1]
    section = re.split(r"\n#{2,3} ", section, maxsplit=1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))


def test_every_model_and_sampling_field_is_documented_and_no_other() -> None:
    text = (DOCS / "config.md").read_text()
    assert _table_fields(text, "## `models`") == set(ModelSection.model_fields)
    assert _table_fields(text, "### `sampling`") == set(Sampling.model_fields)


def test_every_section_has_a_heading() -> None:
    text = (DOCS / "config.md").read_text()
    for section in ConfigFile.model_fields:
        assert f"\n## `{section}`\n" in text, section


def test_every_file_setting_is_documented_in_settings_md() -> None:
    text = (DOCS / "settings.md").read_text()
    names = [name for name, _, _, _ in describe() if name not in NOT_IN_FILE]
    assert [n for n in names if f"| `{n}` |" not in text] == []
    for name in NOT_IN_FILE:
        assert f"`{name}`" in (DOCS / "config.md").read_text()


def test_the_complete_example_is_valid() -> None:
    text = (DOCS / "config.md").read_text()
    example = text.split("## A complete example", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    config = parse_config(example, "docs/config.md")
    assert set(config.presets) == {"fast", "long-context", "low-memory", "creative"}
    used = {field for section in config.models.values() for field in section.model_fields_set}
    used |= {field for preset in config.presets.values() for field in preset.model_fields_set}
    assert used == set(ModelSection.model_fields), "the example should show every field"
    assert config.aliases["auto"] == ["llama-3.2-3b", "qwen3-0.6b"]
