"""`mlxctl create` from a ModelSpec: new layers only, settings that serve, and the spec back."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import pytest

from mlxctl.engine import mlxlm
from mlxctl.errors import InvalidInput, NotFound
from mlxctl.factory import lay_out_hf_cache
from mlxctl.library import build, catalog, inventory
from mlxctl.registry import Registry
from mlxctl.settings import Settings
from mlxctl.store.content.garbage import plan_prune
from mlxctl.store.content.layout import StoreLayout
from mlxctl.store.content.manifest import TEMPLATE, WEIGHTS
from mlxctl.store.content.modelspec import parse_spec
from mlxctl.store.content.tags import parse_name
from mlxctl.store.local.hfcache import scan_hf_cache

TEMPLATE_TEXT = (
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
    "{% endfor %}<|im_start|>assistant\n"
)
SPEC = f'''# A helper built on the tiny factory model.
FROM tiny
PARAMETER temperature 0.2
PARAMETER top_p 0.9
PARAMETER stop "<|im_end|>"
TEMPLATE """{TEMPLATE_TEXT}"""
SYSTEM You answer in one word.
MESSAGE user Capital of France?
MESSAGE assistant Paris
ADAPTER ./adapter
PARSER tool json_tools
PARSER reasoning think
LICENSE """Apache-2.0
(a test license)"""
'''


@pytest.fixture
def layout(settings: Settings) -> StoreLayout:
    return catalog.open_store(settings)


@pytest.fixture
def tiny(registry: Registry, layout: StoreLayout, tiny_model: Path) -> str:
    inventory.register_path(registry, tiny_model, slug="tiny-src")
    catalog.copy(registry, layout, "tiny-src", "tiny")
    return "tiny"


def write_adapter(folder: Path) -> Path:
    """A LoRA adapter for the tiny qwen2 in mlx-lm's format (rank 4 on q/v of both layers)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "fine_tune_type": "lora",
        "num_layers": 2,
        "lora_parameters": {
            "rank": 4,
            "scale": 2.0,
            "dropout": 0.0,
            "keys": ["self_attn.q_proj", "self_attn.v_proj"],
        },
    }
    (folder / "adapter_config.json").write_text(json.dumps(config))
    weights = {}
    for i in range(2):
        prefix = f"model.layers.{i}.self_attn."
        for proj, out in (("q_proj", 64), ("v_proj", 32)):
            weights[f"{prefix}{proj}.lora_a"] = mx.full((64, 4), 0.01)
            weights[f"{prefix}{proj}.lora_b"] = mx.full((4, out), 0.01)
    mx.save_safetensors(str(folder / "adapters.safetensors"), weights)
    return folder


def spec_file(folder: Path, text: str, name: str = "ModelSpec") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def weights_of(layout: StoreLayout, name: str) -> str:
    manifest, _ = layout.manifest(parse_name(name))
    return next(d.digest for d in manifest.layers if d.media_type == WEIGHTS)


def test_every_instruction_lands_in_the_model_and_its_registry_row(
    tiny: str, registry: Registry, layout: StoreLayout, tmp_path: Path
) -> None:
    write_adapter(tmp_path / "spec" / "adapter")
    report = build.create(registry, layout, "helper:v1", spec_file(tmp_path / "spec", SPEC))

    record = registry.get("helper:v1")
    assert record is not None and record == report.record and record.source == "store"
    folder = Path(record.cache_path)
    assert record.chat_template == str(folder / "chat_template.jinja")
    assert Path(record.chat_template).read_text() == TEMPLATE_TEXT
    assert (record.tool_call_parser, record.reasoning_parser) == ("json_tools", "think")
    assert record.extra["options"] == {"temperature": 0.2, "top_p": 0.9, "stop": ["<|im_end|>"]}
    assert record.extra["system"] == "You answer in one word."
    assert record.extra["messages"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
    ]
    assert (folder / "LICENSE").read_text() == "Apache-2.0\n(a test license)"
    assert record.extra["adapter_path"] == str(folder / "adapter")

    # Parser and template settings travel in the config blob; the base's weights are shared.
    manifest, digest = layout.manifest(parse_name("helper:v1"))
    config = layout.config(manifest)
    assert (config.tool_call_parser, config.chat_template, config.base) == (
        "json_tools",
        "chat_template.jinja",
        "tiny",
    )
    assert manifest.files()["chat_template.jinja"].media_type == TEMPLATE
    assert weights_of(layout, "helper:v1") == weights_of(layout, "tiny")
    new_files = {"chat_template.jinja", "params.json", "system.txt", "messages.json", "LICENSE"}
    new_files |= {"adapter/adapters.safetensors", "adapter/adapter_config.json", "ModelSpec"}
    assert report.new_blobs == len(new_files) + 1  # + the config blob
    assert report.manifest_digest == digest

    model, tokenizer = mlxlm.load(folder, adapter_path=record.extra["adapter_path"])
    assert type(model.model.layers[0].self_attn.q_proj).__name__ == "LoRALinear"
    assert list(mlxlm.stream_generate(model, tokenizer, "Hi", max_tokens=2))


def test_show_modelfile_prints_the_spec_back(
    tiny: str, registry: Registry, layout: StoreLayout, tmp_path: Path
) -> None:
    write_adapter(tmp_path / "spec" / "adapter")
    first = build.create(registry, layout, "helper:v1", spec_file(tmp_path / "spec", SPEC))
    text = build.modelfile(registry, layout, "helper:v1")
    assert parse_spec(text) == parse_spec(SPEC)
    # The printed spec builds the very same model.
    again = build.create(registry, layout, "helper:v2", spec_file(tmp_path / "spec", text, "Copy"))
    assert again.manifest_digest == first.manifest_digest and again.new_blobs == 0
    # Models without a spec get one derived from where they came from.
    derived = parse_spec(build.modelfile(registry, layout, "tiny"))
    assert derived.base.endswith("tiny-qwen2") and derived.template is None


def test_a_derived_model_inherits_and_overrides(
    tiny: str, registry: Registry, layout: StoreLayout, tmp_path: Path
) -> None:
    write_adapter(tmp_path / "spec" / "adapter")
    build.create(registry, layout, "helper", spec_file(tmp_path / "spec", SPEC))
    child = "FROM helper\nPARAMETER temperature 0.7\nPARSER tool qwen3_coder\n"
    build.create(registry, layout, "helper-warm", spec_file(tmp_path / "child", child))
    record = registry.get("helper-warm")
    assert record is not None
    assert record.extra["options"] == {"temperature": 0.7, "top_p": 0.9, "stop": ["<|im_end|>"]}
    assert (record.tool_call_parser, record.reasoning_parser) == ("qwen3_coder", "think")
    assert record.extra["system"] == "You answer in one word."
    assert Path(record.chat_template or "").read_text() == TEMPLATE_TEXT
    assert build.modelfile(registry, layout, "helper-warm") == (
        "FROM helper\nPARSER tool qwen3_coder\nPARAMETER temperature 0.7\n"
    )


def test_quantize_goes_through_mlx_lm_and_shares_the_tokenizer(
    tiny: str, registry: Registry, layout: StoreLayout, tmp_path: Path
) -> None:
    build.create(registry, layout, "tiny-q4", spec_file(tmp_path, "FROM tiny\nQUANTIZE 4\n"))
    record = registry.get("tiny-q4")
    assert record is not None and (record.quant_bits, record.quant_group_size) == (4, 64)
    quantized, _ = layout.manifest(parse_name("tiny-q4"))
    original, _ = layout.manifest(parse_name("tiny"))
    assert quantized.files()["tokenizer.json"] == original.files()["tokenizer.json"]
    assert weights_of(layout, "tiny-q4") != weights_of(layout, "tiny")
    assert not list(layout.root.glob(".tmp-quantize-*"))
    model, tokenizer = mlxlm.load(record.cache_path)
    assert list(mlxlm.stream_generate(model, tokenizer, "Hi", max_tokens=2))
    with pytest.raises(InvalidInput, match="already 4-bit quantized"):
        build.create(registry, layout, "twice", spec_file(tmp_path, "FROM tiny-q4\nQUANTIZE 8\n"))


@pytest.mark.parametrize(
    ("text", "error", "kind"),
    [
        (
            "FROM tiny\n\n# comment\nSYSTEM hi\n\n\nPARAMETR temperature 1\n",
            "ModelSpec:7: unknown instruction 'PARAMETR'",
            InvalidInput,
        ),
        (
            "FROM no-such-model\n",
            "ModelSpec: FROM no-such-model: no such model or folder",
            NotFound,
        ),
        (
            "FROM tiny\nPARSER tool no_such_parser\n",
            "ModelSpec: PARSER tool 'no_such_parser'",
            InvalidInput,
        ),
        (
            "FROM tiny\nPARSER reasoning maybe\n",
            "ModelSpec: PARSER reasoning 'maybe'",
            InvalidInput,
        ),
        ("FROM tiny\nADAPTER ./nothing-here\n", "ADAPTER ./nothing-here:", InvalidInput),
    ],
)
def test_a_bad_spec_names_its_fault_and_creates_nothing(
    tiny: str,
    registry: Registry,
    layout: StoreLayout,
    tmp_path: Path,
    text: str,
    error: str,
    kind: type[Exception],
) -> None:
    path = spec_file(tmp_path, text)
    before = set(layout.blobs.digests())
    with pytest.raises(kind) as info:
        build.create(registry, layout, "broken", path)
    assert str(info.value).startswith(error.replace("ModelSpec", str(path), 1))
    assert registry.get("broken") is None and layout.tags.read(parse_name("broken")) is None
    written = set(layout.blobs.digests()) - before  # layers made before the fault: garbage
    assert {digest for digest, _ in plan_prune(layout).blobs} == written


def test_from_an_hf_cache_model_links_its_files(
    registry: Registry, layout: StoreLayout, settings: Settings, tiny_model: Path, tmp_path: Path
) -> None:
    snapshot = lay_out_hf_cache(tiny_model, settings.hf_cache_dir, "mlx-test/tiny-qwen2")
    inventory.init_from_hf_cache(registry, settings.hf_cache_dir)
    build.create(
        registry, layout, "chatty", spec_file(tmp_path, "FROM tiny-qwen2\nSYSTEM Be chatty.\n")
    )
    weights = layout.blobs.path(weights_of(layout, "chatty"))
    assert weights.stat().st_ino == (snapshot / "model.safetensors").stat().st_ino
    assert scan_hf_cache(settings.hf_cache_dir).found[0].info.path == snapshot  # cache intact
    origin = layout.config(layout.manifest(parse_name("chatty"))[0]).origin
    assert origin == f"hf://mlx-test/tiny-qwen2@{snapshot.name}"


def test_from_a_folder_copies_it(
    registry: Registry, layout: StoreLayout, tiny_model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "work" / "my-model"
    folder.mkdir(parents=True)
    for file in tiny_model.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    build.create(registry, layout, "mine", spec_file(tmp_path / "work", "FROM ./my-model\n"))
    weights = layout.blobs.path(weights_of(layout, "mine"))
    assert weights.stat().st_ino != (folder / "model.safetensors").stat().st_ino
    assert weights.read_bytes() == (folder / "model.safetensors").read_bytes()
