"""Schemathesis hooks for the fuzz run (loaded by `st` through SCHEMATHESIS_HOOKS).

`before_call`: random model names only reach the registry lookup (404), so most
generated bodies are pointed at the served model to reach the worker's own checks;
generation is kept short and the model loaded, so the run spends its time on
requests, not on decoding thousands of tokens or reloading after `keep_alive: 0`.

`filter_failure`: the few verdicts a static document cannot make, each named below.
Everything else Schemathesis finds fails the run.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import schemathesis
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.openapi.checks import RejectedPositiveData

from mlxctl.errors import InvalidInput
from mlxctl.jsonnum import as_int
from mlxctl.scheduler.keepalive import parse_keep_alive

MODEL = os.environ.get("MLXCTL_FUZZ_MODEL", "")
DROPPED = os.environ.get("MLXCTL_FUZZ_DROPPED", "")
MAX_TOKENS = 8
# The field naming what to run or copy; admin unload and the slots keep random names.
_TARGET = {
    "/v1/chat/completions": "model",
    "/v1/completions": "model",
    "/v1/embeddings": "model",
    "/v1/rerank": "model",
    "/rerank": "model",
    "/v2/rerank": "model",
    "/v1/messages": "model",
    "/v1/responses": "model",
    "/v1/messages/count_tokens": "model",
    "/api/chat": "model",
    "/api/generate": "model",
    "/api/embed": "model",
    "/api/embeddings": "model",
    "/api/show": "model",
    "/api/admin/load": "model",
    "/models/load": "model",
    "/api/copy": "source",
    "/api/delete": "model",
}
_rng = random.Random(int(os.environ.get("MLXCTL_FUZZ_SEED", "0")))


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    body, field = case.body, _TARGET.get(case.path)
    if not MODEL or field is None or not isinstance(body, dict):
        return
    name = body.get(field)
    # Only a well-formed name is swapped, so a body that is invalid stays invalid.
    if isinstance(name, str) and name.strip() and _rng.random() < 0.75:
        body[field] = MODEL
        _clamp(body, "max_tokens")
        _clamp(body, "max_completion_tokens")
        _clamp(body, "max_output_tokens")
        options = body.get("options")
        if isinstance(options, dict):
            _clamp(options, "num_predict")
        if _unloads(body.get("keep_alive")):
            body["keep_alive"] = "10m"


def _clamp(fields: dict[str, Any], name: str) -> None:
    value = as_int(fields.get(name))
    if value is not None and value > MAX_TOKENS:
        fields[name] = MAX_TOKENS


def _unloads(value: object) -> bool:
    if value is None:
        return False
    try:
        return parse_keep_alive(value) == 0
    except InvalidInput:
        return False


# 400s that depend on the model, not on the request's shape: its vocabulary, its
# context length, the embedding sizes it was trained for. The document cannot list them.
_MODEL_DEPENDENT = (
    "out of range",
    "Token ids must be in",
    "maximum context length",
    "does not support 'dimensions'",
    "'dimensions' must be an integer from 1 to",
    "could not render these messages",
    "this request's num_ctx allows",  # the prompt's token count against num_ctx
    "this is a text-only model",  # an image part: the served model reads no images
    "not a reranker",
    "leaves no room for a document",
)
# Images are checked for what they hold (base64 of a PNG, JPEG, ...), which the document
# gives in prose: a generated string is rarely one.
_IMAGE_CONTENT = (
    "is not a base64 data URL",
    "is not valid base64",
    "is an image URL",
    "is not an image this server reads",
)
# Names the daemon's config.yaml defines (presets): the document gives their shape only.
_CONFIG_DEPENDENT = ("no preset named",)
# A load's `shard` placement: its rules (rank 0 here, a remote host's memory and address,
# JACCL's devices, each host's budget) are given in prose (docs/scale-out.md).
_PLACEMENT = (
    "must be this machine",
    "at least 2 ranks",
    "give its memory budget",
    "give the IP address",
    "needs one rank and `rdma`",
    "is not a size",
    "is not an IP address",
    "does not fit host",
    "is sharded",
)
# Model names and pull references follow grammars the document gives in prose (store
# names, HF repo ids, OCI references), not as patterns: a second copy could drift.
_NAME_GRAMMAR = (
    "does not name a registry",
    "is not a Hugging Face repo id",
    "invalid model name",
    "invalid repository",
    "invalid tag",
    "invalid digest",
    "must be a plain file name",
)
# Refusals that depend on what the daemon holds or what a body hashes to: loading a model
# that runs, unloading one that does not (llama.cpp's router answers those 400), a blob
# whose bytes are not the digest in its path.
# /api/create reads its files, template and base: uploaded or not, a model folder's file
# names, Jinja rather than Go, a base already quantized.
_STATE_DEPENDENT = (
    "is already running",
    "is not running",
    "digest mismatch",
    "has not been uploaded",
    "is not a file of an MLX model folder",
    "is a Go template",
    "the base is already",
)
# The registry and store operations check what their fields name (a file, a registry.json,
# a ModelSpec, a store name): the document describes the fields' shapes, the operation the
# content. Refusals of a field's shape name it (`param`); refusals of content do not.
_OPERATIONS = ("/api/admin/models", "/api/admin/registry", "/api/admin/store", "/api/admin/jobs")
# An Ollama request without a prompt only loads (or unloads) the model; it never reaches
# the worker, which is what checks sampling options, so those are not checked then.
_LOAD_ONLY = ('"done_reason":"load"', '"done_reason":"unload"')


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """False drops the failure; each drop is written to MLXCTL_FUZZ_DROPPED for the test."""
    reason = _excuse(failure, case, response)
    if reason is not None and DROPPED:
        line = {"reason": reason, "path": case.path, "status": response.status_code}
        with open(DROPPED, "a") as f:
            f.write(json.dumps(line) + "\n")
    return reason is None


def _excuse(failure: Any, case: Any, response: Any) -> str | None:
    text = response.text
    if isinstance(failure, RejectedPositiveData) and response.status_code == 400:
        found = [f"model: {r}" for r in _MODEL_DEPENDENT if r in text]
        found += [f"name grammar: {r}" for r in _NAME_GRAMMAR if r in text]
        found += [f"config: {r}" for r in _CONFIG_DEPENDENT if r in text]
        found += [f"placement: {r}" for r in _PLACEMENT if r in text]
        found += [f"image content: {r}" for r in _IMAGE_CONTENT if r in text]
        found += [f"state: {r}" for r in _STATE_DEPENDENT if r in text]
        if case.path.startswith(_OPERATIONS) and _param(response) is None:
            found.append("operation: content refused")
        return found[0] if found else None
    if isinstance(failure, AcceptedNegativeData) and any(mark in text for mark in _LOAD_ONLY):
        return "ollama: load only"
    # The run refuses the network (see test_fuzz.py): a pull's registry is unreachable.
    pulls = ("/api/pull", "/api/admin/store/pull", "/api/admin/store/push", "/api/admin/jobs")
    if case.path in pulls and response.status_code == 503:
        return "pull: network refused"
    return None


def _param(response: Any) -> str | None:
    try:
        error = response.json().get("error")
    except ValueError:
        return None
    return error.get("param") if isinstance(error, dict) else None
