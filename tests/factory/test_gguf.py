"""Factory models written as GGUF load in llama.cpp and generate, for each quant type."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gguf", reason="the gguf package is not installed")
llama_cpp = pytest.importorskip(
    "llama_cpp", reason="llama-cpp-python is not installed (pip install llama-cpp-python)"
)

from mlxctl.factory.gguf import gguf_name, make_gguf  # noqa: E402


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("quant", ["F16", "Q8_0", "Q4_0"])
def test_llama_cpp_loads_and_generates(tmp_path: Path, arch: str, quant: str) -> None:
    path = make_gguf(tmp_path, arch=arch, quant=quant)
    llm = llama_cpp.Llama(str(path), n_ctx=256, verbose=False)
    try:
        assert llm.n_vocab() == 2055
        assert llm.metadata["general.architecture"] == arch
        assert "tokenizer.chat_template" in llm.metadata
        # The GGUF tokenizer matches the HF one it was written from.
        ids = llm.tokenize(b"Hello world, 123", add_bos=False, special=True)
        assert llm.detokenize(ids).decode() == "Hello world, 123"
        out = llm.create_completion("Once upon a time", max_tokens=8, temperature=0)
        assert out["usage"]["completion_tokens"] >= 1
    finally:
        llm.close()


def test_gguf_and_mlx_agree_on_the_first_greedy_token(tmp_path: Path) -> None:
    """Same weights, same math: F16 llama.cpp picks MLX's greedy token (rope layout is right)."""
    import mlx.core as mx

    from mlxctl.engine import mlxlm
    from mlxctl.factory import make_model

    for arch in ("llama", "qwen2"):
        mlx_dir = make_model(tmp_path / f"{arch}-mlx", arch=arch)
        path = make_gguf(tmp_path / f"{arch}-gguf", arch=arch, quant="F32")
        model, tokenizer = mlxlm.load(mlx_dir)
        prompt = tokenizer.encode("The quick brown fox jumps over the lazy dog")
        logits = model(mx.array([prompt]))[0, -1]
        llm = llama_cpp.Llama(str(path), n_ctx=256, verbose=False, logits_all=True)
        try:
            llm.eval(prompt)
            theirs = llm.scores[len(prompt) - 1]
            assert int(theirs.argmax()) == int(mx.argmax(logits).item()), arch
        finally:
            llm.close()


def test_tensor_names_follow_llama_cpp() -> None:
    assert gguf_name("model.embed_tokens.weight") == "token_embd.weight"
    assert gguf_name("model.layers.3.self_attn.k_proj.bias") == "blk.3.attn_k.bias"
    assert gguf_name("model.layers.0.mlp.down_proj.weight") == "blk.0.ffn_down.weight"
    with pytest.raises(ValueError):
        gguf_name("model.layers.0.unknown.weight")


def test_make_model_cli_writes_a_gguf(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mlxctl.cli.dev import dev

    result = CliRunner().invoke(
        dev, ["make-model", "x", "--arch", "llama", "--gguf", "Q4_0", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "llama-tiny-q4_0.gguf").is_file()
