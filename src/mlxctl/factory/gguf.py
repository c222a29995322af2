"""A factory model written as one GGUF file, laid out as llama.cpp's converter would.

`write_gguf(model_dir, path, quant)` reads a factory model folder (MLX safetensors,
config.json, tokenizer.json, tokenizer_config.json) and writes `path` with the `gguf`
library: hyperparameters under the architecture's keys, the byte-level BPE tokenizer
(`gpt2` model, tokens, types, merges, special ids, chat template) and every tensor
under llama.cpp's names, 2-D weights in F16, Q8_0 or Q4_0 (quantized in numpy).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["QUANTS", "gguf_name", "make_gguf", "write_gguf"]

QUANTS = ("F32", "F16", "Q8_0", "Q4_0")
# llama.cpp's pre-tokenizer names for the factory's split patterns (same regexes).
_PRE = {"llama": "llama-bpe", "qwen2": "qwen2"}
# GGUF token types (gguf.TokenType): normal, control (special) and user-defined.
_NORMAL, _CONTROL, _USER_DEFINED, _UNUSED = 1, 3, 4, 5
_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_GLOBAL = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def gguf_name(name: str) -> str:
    """llama.cpp's tensor name for an HF/mlx-lm weight name."""
    if name in _GLOBAL:
        return _GLOBAL[name]
    parts = name.split(".", 3)  # model, layers, N, rest
    if len(parts) == 4 and parts[:2] == ["model", "layers"] and parts[3] in _LAYER:
        return f"blk.{parts[2]}.{_LAYER[parts[3]]}"
    raise ValueError(f"no GGUF name for weight {name!r}")


def make_gguf(
    out_dir: Path,
    *,
    arch: str = "qwen2",
    size: str = "tiny",
    seed: int = 0,
    quant: str = "Q8_0",
    keep_tokenizer: bool = False,
) -> Path:
    """Build a factory model and write it as `out_dir/<arch>-<size>-<quant>.gguf`.

    With `keep_tokenizer` the HF tokenizer files stay beside the GGUF (the layout
    of repos that ship both); otherwise only the GGUF is left.
    """
    import tempfile

    from mlxctl.factory.model import make_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlxctl-gguf-") as tmp:
        src = make_model(Path(tmp), arch=arch, size=size, seed=seed)
        path = write_gguf(src, out_dir / f"{arch}-{size}-{quant.lower()}.gguf", quant=quant)
        if keep_tokenizer:
            for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
                (out_dir / name).write_bytes((src / name).read_bytes())
    return path


def write_gguf(model_dir: Path, path: Path, *, quant: str = "Q8_0") -> Path:
    """Write the unquantized MLX model in `model_dir` as a GGUF file at `path`."""
    import gguf

    if quant not in QUANTS:
        raise ValueError(f"quant must be one of {', '.join(QUANTS)}, not {quant!r}")
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    if "quantization" in config:
        raise ValueError("write_gguf needs an unquantized model (make_model without bits)")
    arch = str(config["model_type"])
    if arch not in _PRE:
        raise ValueError(f"unsupported architecture {arch!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch)
    _hyperparameters(writer, config, quant)
    _tokenizer(writer, model_dir, arch, int(config["vocab_size"]))
    for name, array in _tensors(model_dir, config):
        _add_tensor(writer, name, array, quant)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _hyperparameters(writer: Any, config: dict[str, Any], quant: str) -> None:
    import gguf

    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or config["hidden_size"] // heads)
    writer.add_name(f"mlxctl-factory {config['model_type']}")
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config["num_key_value_heads"]))
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(config["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(int(config["vocab_size"]))
    file_type = {
        "F32": gguf.LlamaFileType.ALL_F32,
        "F16": gguf.LlamaFileType.MOSTLY_F16,
        "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
    }[quant]
    writer.add_file_type(int(file_type))


def _tokenizer(writer: Any, model_dir: Path, arch: str, vocab_size: int) -> None:
    spec = json.loads((model_dir / "tokenizer.json").read_text())
    tok_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    by_id: dict[int, tuple[str, int]] = {
        int(i): (str(t), _NORMAL) for t, i in spec["model"]["vocab"].items()
    }
    for added in spec.get("added_tokens", []):
        by_id[int(added["id"])] = (
            str(added["content"]),
            _CONTROL if added.get("special") else _USER_DEFINED,
        )
    ids = {text: i for i, (text, _) in by_id.items()}
    # Padded rows of the embedding get placeholder tokens, as llama.cpp's converter does.
    size = max(vocab_size, max(by_id) + 1)
    tokens = [by_id.get(i, (f"[PAD{i}]", _UNUSED)) for i in range(size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_PRE[arch])
    writer.add_token_list([t for t, _ in tokens])
    writer.add_token_types([k for _, k in tokens])
    writer.add_token_merges(merges)
    bos, eos, pad = (tok_config.get(k) for k in ("bos_token", "eos_token", "pad_token"))
    if bos in ids:
        writer.add_bos_token_id(ids[bos])
    if eos in ids:
        writer.add_eos_token_id(ids[eos])
    if pad in ids:
        writer.add_pad_token_id(ids[pad])
    if arch == "llama" and "<|eot_id|>" in ids:
        writer.add_eot_token_id(ids["<|eot_id|>"])
    writer.add_add_bos_token(bool(tok_config.get("add_bos_token", False)))
    if tok_config.get("chat_template"):
        writer.add_chat_template(str(tok_config["chat_template"]))


def _tensors(model_dir: Path, config: dict[str, Any]) -> list[tuple[str, np.ndarray[Any, Any]]]:
    import mlx.core as mx

    weights: dict[str, mx.array] = {}
    for file in sorted(model_dir.glob("model*.safetensors")):
        weights.update(mx.load(str(file)))  # type: ignore[arg-type]
    heads, kv_heads = int(config["num_attention_heads"]), int(config["num_key_value_heads"])
    out: list[tuple[str, np.ndarray[Any, Any]]] = []
    for name in sorted(weights):
        array = np.array(weights[name].astype(mx.float32))
        # llama.cpp's LLAMA rope rotates adjacent pairs; HF rotates halves: permute q/k rows.
        if config["model_type"] == "llama" and name.endswith("q_proj.weight"):
            array = _permute(array, heads)
        elif config["model_type"] == "llama" and name.endswith("k_proj.weight"):
            array = _permute(array, kv_heads)
        out.append((gguf_name(name), array))
    return out


def _permute(weight: np.ndarray[Any, Any], heads: int) -> np.ndarray[Any, Any]:
    rows = weight.shape[0]
    halves = weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
    return halves.swapaxes(1, 2).reshape(weight.shape)


def _add_tensor(writer: Any, name: str, array: np.ndarray[Any, Any], quant: str) -> None:
    import gguf

    # Norms and biases stay F32 (llama.cpp's rule); rows not a block multiple stay F16.
    if array.ndim == 1 or quant == "F32":
        writer.add_tensor(name, array.astype(np.float32))
        return
    if quant == "F16" or array.shape[-1] % 32:
        writer.add_tensor(name, array.astype(np.float16))
        return
    qtype = gguf.GGMLQuantizationType[quant]
    writer.add_tensor(name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
