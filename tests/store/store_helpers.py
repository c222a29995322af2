"""Tiny real model folders and hand-built Hugging Face cache layouts for store tests."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlx.core as mx

# A 2-layer llama small enough to write in milliseconds.
VOCAB, HIDDEN, INTERMEDIATE, LAYERS, HEADS, KV_HEADS = 128, 64, 128, 2, 4, 2
HEAD_DIM = HIDDEN // HEADS
PER_LAYER = (
    HIDDEN * HIDDEN * 2  # q_proj, o_proj
    + KV_HEADS * HEAD_DIM * HIDDEN * 2  # k_proj, v_proj
    + INTERMEDIATE * HIDDEN * 3  # gate, up, down
    + HIDDEN * 2  # two norms
)
PARAMETERS = VOCAB * HIDDEN * 2 + LAYERS * PER_LAYER + HIDDEN  # embed + lm_head + layers + norm


def llama_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    }
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def llama_weights(dtype: mx.Dtype = mx.float32) -> dict[str, mx.array]:
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (VOCAB, HIDDEN),
        "model.norm.weight": (HIDDEN,),
        "lm_head.weight": (VOCAB, HIDDEN),
    }
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        shapes[p + "self_attn.q_proj.weight"] = (HIDDEN, HIDDEN)
        shapes[p + "self_attn.k_proj.weight"] = (KV_HEADS * HEAD_DIM, HIDDEN)
        shapes[p + "self_attn.v_proj.weight"] = (KV_HEADS * HEAD_DIM, HIDDEN)
        shapes[p + "self_attn.o_proj.weight"] = (HIDDEN, HIDDEN)
        shapes[p + "mlp.gate_proj.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[p + "mlp.up_proj.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[p + "mlp.down_proj.weight"] = (HIDDEN, INTERMEDIATE)
        shapes[p + "input_layernorm.weight"] = (HIDDEN,)
        shapes[p + "post_attention_layernorm.weight"] = (HIDDEN,)
    return {name: mx.random.normal(shape).astype(dtype) for name, shape in shapes.items()}


def quantize_weights(
    weights: dict[str, mx.array], bits: int = 4, group_size: int = 64, scales: mx.Dtype = mx.float16
) -> dict[str, mx.array]:
    """Quantize every matrix the way mlx-lm stores it; norms keep their dtype."""
    out: dict[str, mx.array] = {}
    for name, w in weights.items():
        if w.ndim != 2:
            out[name] = w
            continue
        prefix = name.removesuffix("weight")
        q, s, b = mx.quantize(w.astype(scales), group_size=group_size, bits=bits)
        out.update({name: q, prefix + "scales": s, prefix + "biases": b})
    return out


def write_model(
    path: Path,
    *,
    config: Mapping[str, Any] | None = None,
    weights: Mapping[str, mx.array] | None = None,
    shards: int = 1,
    chat_template: bool = False,
) -> Path:
    """A model folder mlx-lm could load: config.json plus model*.safetensors."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config or llama_config()))
    tensors = dict(weights if weights is not None else llama_weights())
    names = sorted(tensors)
    if shards == 1:
        mx.save_safetensors(str(path / "model.safetensors"), tensors)
    else:
        weight_map = {}
        for i in range(shards):
            file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: tensors[n] for n in names[i::shards]}
            mx.save_safetensors(str(path / file), part)
            weight_map.update(dict.fromkeys(part, file))
        index = {"metadata": {}, "weight_map": weight_map}
        (path / "model.safetensors.index.json").write_text(json.dumps(index))
    tokenizer_config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast"}
    if chat_template:
        tokenizer_config["chat_template"] = "{{ messages }}"
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return path


def folder_files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def commit(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


def lay_out_repo(
    cache: Path,
    repo_id: str,
    revisions: Mapping[str, Mapping[str, bytes]],
    refs: Mapping[str, str] | None = None,
    repo_type: str = "models",
) -> Path:
    """An HF cache repo: blobs by content hash, snapshots of relative symlinks, refs.

    Identical file contents in two revisions share one blob, as on the hub.
    """
    repo = cache / f"{repo_type}--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for commit_hash, files in revisions.items():
        snapshot = repo / "snapshots" / commit_hash
        for name, data in files.items():
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            if not blob.exists():
                blob.write_bytes(data)
            link = snapshot / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    for ref, commit_hash in (refs or {}).items():
        ref_path = repo / "refs" / ref
        ref_path.parent.mkdir(parents=True, exist_ok=True)
        ref_path.write_text(commit_hash)
    return repo


def disk_bytes(root: Path) -> int:
    """Bytes of the regular files under `root` (symlinks not followed)."""
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath, name)
            if not p.is_symlink():
                total += p.stat().st_size
    return total
