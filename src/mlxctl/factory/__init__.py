"""Test-model factory: small models of real architectures, made locally.

`make_model` writes a random-weight mlx-lm model with a locally trained byte-level BPE
tokenizer and a chat template; `lay_out_hf_cache` files a model directory into a Hugging
Face cache as if it had been downloaded. Nothing here touches the network.
"""

from mlxctl.factory.hflayout import lay_out_hf_cache
from mlxctl.factory.model import ARCHS, SIZES, make_model, model_config

__all__ = ["ARCHS", "SIZES", "lay_out_hf_cache", "make_model", "model_config"]
