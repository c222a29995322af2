"""Random-weight models of real architectures, written in MLX format.

`make_model` picks a shape from `SHAPES` (architecture × size), trains or reuses the
matching tokenizer, instantiates the mlx-lm model class, fills every weight from a
seeded key and saves through `mlxctl.engine.mlxlm`, so the result loads exactly like a
converted checkpoint. The same arguments always produce byte-identical files.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import mlx.core as mx
from mlx.nn.layers.base import Module
from mlx.utils import tree_flatten, tree_unflatten

from mlxctl.engine import mlxlm
from mlxctl.factory.cachearchs import CACHE_ARCHS, cache_arch_config, zero_centred_norms
from mlxctl.factory.tokenizer import TokenizerInfo, tokenizer_info, write_tokenizer

__all__ = [
    "ARCHS",
    "DTYPES",
    "SHAPES",
    "SIZES",
    "Shape",
    "build_model",
    "make_model",
    "model_config",
    "randomize",
]

ARCHS = ("llama", "qwen2", "gpt_oss", "qwen3_5", "gemma3_text")
SIZES = ("tiny", "small", "0.5b")
DTYPES: dict[str, mx.Dtype] = {
    "float32": mx.float32,
    "bfloat16": mx.bfloat16,
    "float16": mx.float16,
}


@dataclass(frozen=True)
class Shape:
    """The numbers that set a model's size; `vocab_size=None` means the tokenizer's size."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    bpe_vocab: int  # trained BPE tokens before the family's specials
    max_positions: int
    tie_embeddings: bool
    vocab_size: int | None = None


SHAPES: dict[tuple[str, str], Shape] = {
    ("qwen2", "tiny"): Shape(64, 2, 4, 2, 256, 2048, 4096, True),
    ("qwen2", "small"): Shape(512, 8, 8, 2, 2048, 8192, 8192, True),
    # Qwen2.5-0.5B-Instruct, down to the padded vocabulary.
    ("qwen2", "0.5b"): Shape(896, 24, 14, 2, 4864, 8192, 32768, True, vocab_size=151936),
    # Untied heads below 0.5b so both output paths (lm_head and tied) get exercised.
    ("llama", "tiny"): Shape(64, 2, 4, 2, 256, 2048, 4096, False),
    ("llama", "small"): Shape(512, 8, 8, 2, 1536, 8192, 8192, False),
    # A Llama-3.2-like shape scaled to ~0.5B, with the Llama 3 vocabulary size.
    ("llama", "0.5b"): Shape(1024, 24, 16, 4, 4096, 8192, 8192, True, vocab_size=128256),
    # gpt-oss: mixture of experts, sinks, sliding and full attention in turn, Harmony chat.
    ("gpt_oss", "tiny"): Shape(64, 2, 4, 2, 64, 2048, 4096, False),
    ("gpt_oss", "small"): Shape(512, 8, 8, 2, 512, 8192, 8192, False),
    # Caches other than plain KVCache (factory/cachearchs.py): a hybrid and a sliding window.
    ("qwen3_5", "tiny"): Shape(64, 4, 4, 2, 256, 2048, 4096, True),
    ("qwen3_5", "small"): Shape(512, 8, 8, 2, 1536, 8192, 8192, True),
    ("gemma3_text", "tiny"): Shape(64, 2, 4, 2, 256, 2048, 4096, False),
    ("gemma3_text", "small"): Shape(512, 8, 8, 2, 1536, 8192, 8192, False),
}

_FAMILY = {
    "qwen2": "chatml",
    "llama": "llama3",
    "gpt_oss": "harmony",
    "qwen3_5": "chatml",
    "gemma3_text": "chatml",
}
GPT_OSS_EXPERTS, GPT_OSS_ACTIVE, GPT_OSS_WINDOW = 4, 2, 128


def _vocab_size(shape: Shape, tokens: TokenizerInfo) -> int:
    # Unpadded below 0.5b: sampling from random weights would pick padding ids often.
    return shape.vocab_size if shape.vocab_size is not None else tokens.size


def model_config(arch: str, size: str, *, dtype: str = "float32") -> dict[str, Any]:
    """The HF-style config.json of a factory model (before any quantization)."""
    _check(arch, size, dtype)
    shape = SHAPES[arch, size]
    tokens = tokenizer_info(_FAMILY[arch], shape.bpe_vocab)
    common: dict[str, Any] = {
        "model_type": arch,
        "hidden_act": "silu",
        "hidden_size": shape.hidden,
        "initializer_range": 0.02,
        "intermediate_size": shape.intermediate,
        "max_position_embeddings": shape.max_positions,
        "num_attention_heads": shape.heads,
        "num_hidden_layers": shape.layers,
        "num_key_value_heads": shape.kv_heads,
        "attention_dropout": 0.0,
        "rope_scaling": None,
        "tie_word_embeddings": shape.tie_embeddings,
        "torch_dtype": dtype,
        "use_cache": True,
        "vocab_size": _vocab_size(shape, tokens),
    }
    if (arch, size) in CACHE_ARCHS:
        ids = {"bos_token_id": tokens.pad_token_id, "eos_token_id": tokens.eos_token_id}
        return cache_arch_config(arch, size, common | ids)
    if arch == "qwen2":
        # Qwen2 configs carry bos = <|endoftext|> although the tokenizer adds no BOS.
        return common | {
            "architectures": ["Qwen2ForCausalLM"],
            "bos_token_id": tokens.pad_token_id,
            "eos_token_id": tokens.eos_token_id,
            "max_window_layers": shape.layers,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "sliding_window": shape.max_positions,
            "use_sliding_window": False,
        }
    if arch == "gpt_oss":
        return common | {
            "architectures": ["GptOssForCausalLM"],
            "attention_bias": True,
            "bos_token_id": tokens.bos_token_id,
            "eos_token_id": list(tokens.eos_token_ids),
            "pad_token_id": tokens.pad_token_id,
            "head_dim": shape.hidden // shape.heads,
            "num_local_experts": GPT_OSS_EXPERTS,
            "num_experts_per_tok": GPT_OSS_ACTIVE,
            "experts_per_token": GPT_OSS_ACTIVE,
            "sliding_window": GPT_OSS_WINDOW,
            "layer_types": ["sliding_attention", "full_attention"] * (shape.layers // 2),
            "rms_norm_eps": 1e-5,
            "rope_theta": 150000,
            "swiglu_limit": 7.0,
        }
    return common | {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "bos_token_id": tokens.bos_token_id,
        "eos_token_id": list(tokens.eos_token_ids),
        "head_dim": shape.hidden // shape.heads,
        "mlp_bias": False,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
    }


def build_model(config: dict[str, Any], *, seed: int = 0, used_vocab: int | None = None) -> Module:
    """An mlx-lm model for `config` with seeded random weights in `config["torch_dtype"]`.

    Weights are evaluated before returning; see `randomize` for how they are drawn.
    """
    model_cls, args_cls = mlxlm.model_classes(config)
    model = cast(Module, model_cls(args_cls.from_dict(config)))
    norm = 0.0 if zero_centred_norms(config) else 1.0
    randomize(
        model, seed=seed, dtype=DTYPES[config["torch_dtype"]], used_vocab=used_vocab, norm=norm
    )
    return model


def randomize(
    model: Module,
    *,
    seed: int,
    dtype: mx.Dtype,
    used_vocab: int | None = None,
    norm: float = 1.0,
    vocab_matrices: tuple[str, ...] = ("embed_tokens.weight", "lm_head.weight"),
) -> None:
    """Replace every parameter of `model` with a seeded draw, evaluated, in `dtype`.

    Norm scales (1-D weights) are `norm` and biases 0; every other tensor is zero-mean with
    std 1/sqrt(fan_in), so activations and logits keep unit scale. Rows from `used_vocab`
    on of the `vocab_matrices` are zero: padding ids then score 0 and greedy decoding stays
    on tokens the tokenizer knows.
    """
    # Typed as Any: mlx's Module methods carry no annotations for mypy to check.
    module: Any = model
    # Sorted names and one split key per tensor: values never depend on module order.
    flat = cast(list[tuple[str, mx.array]], tree_flatten(module.parameters()))
    params = sorted(flat, key=lambda item: item[0])
    keys = mx.random.split(mx.random.key(seed), len(params))
    new: list[tuple[str, mx.array]] = []
    for i, (name, param) in enumerate(params):
        rows = used_vocab if name.endswith(vocab_matrices) else None
        value = _init(name, tuple(param.shape), keys[i], dtype, rows, norm)
        # Evaluate as we go so 0.5b never holds more than one pending tensor graph.
        mx.eval(value)
        new.append((name, value))
    module.update(tree_unflatten(new))


def _init(
    name: str,
    shape: tuple[int, ...],
    key: mx.array,
    dtype: mx.Dtype,
    rows: int | None,
    norm: float,
) -> mx.array:
    if name.endswith(".weight") and len(shape) == 1:
        return mx.full(shape, norm, dtype=dtype)
    if name.endswith(".bias"):
        return mx.zeros(shape, dtype=dtype)
    # MLX conv weights are (out, *kernel, in): every tap of every input adds to the sum.
    fan_in = math.prod(shape[1:]) if len(shape) > 2 else shape[-1]
    bound = math.sqrt(3.0 / fan_in)
    drawn = shape if rows is None or rows >= shape[0] else (rows, *shape[1:])
    # Uniform of the same variance: about 3.5x faster than mx.random.normal on CPU.
    value = mx.random.uniform(-bound, bound, drawn, dtype=mx.float32, key=key).astype(dtype)
    if drawn != shape:
        padding = mx.zeros((shape[0] - drawn[0], *shape[1:]), dtype=dtype)
        value = mx.concatenate([value, padding])
    return value


def make_model(
    out_dir: Path,
    *,
    arch: str = "qwen2",
    size: str = "tiny",
    seed: int = 0,
    dtype: str = "float32",
    quantize_bits: int | None = None,
    group_size: int = 64,
) -> Path:
    """Write a loadable random-weight model into `out_dir` and return `out_dir`.

    Files: config.json, model.safetensors, model.safetensors.index.json, tokenizer.json,
    tokenizer_config.json, special_tokens_map.json, generation_config.json. Weight files
    left by an earlier call are replaced. Identical arguments give identical bytes.
    """
    _check(arch, size, dtype)
    if quantize_bits not in (None, 4, 8):
        raise ValueError(f"quantize_bits must be None, 4 or 8, not {quantize_bits!r}")
    if group_size not in (32, 64, 128):
        raise ValueError(f"group_size must be 32, 64 or 128, not {group_size!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shape = SHAPES[arch, size]
    tokens = write_tokenizer(
        out_dir,
        family=_FAMILY[arch],
        vocab_size=shape.bpe_vocab,
        model_max_length=shape.max_positions,
    )
    config = model_config(arch, size, dtype=dtype)
    model = build_model(config, seed=seed, used_vocab=tokens.size)
    if quantize_bits is not None:
        # mlx-lm reports bits per weight on stdout; a factory should stay quiet.
        with contextlib.redirect_stdout(io.StringIO()):
            model, config = mlxlm.quantize_model(model, config, quantize_bits, group_size)

    for stale in out_dir.glob("model*.safetensors*"):
        stale.unlink()
    mlxlm.save_weights(out_dir, model)
    mlxlm.save_config(config, out_dir / "config.json")
    generation = {
        "bos_token_id": config["bos_token_id"],
        "do_sample": True,
        "eos_token_id": list(tokens.eos_token_ids),
        "pad_token_id": tokens.pad_token_id,
        "temperature": 0.7,
        "top_k": 20,
        "top_p": 0.8,
    }
    (out_dir / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    return out_dir


def _check(arch: str, size: str, dtype: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"Unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if size not in SIZES:
        raise ValueError(f"Unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if (arch, size) not in SHAPES:
        sizes = ", ".join(s for a, s in SHAPES if a == arch)
        raise ValueError(f"{arch} comes in {sizes}, not {size!r}")
    if dtype not in DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
