"""ModelOptions: speculative decoding's flags reach the worker and its draft the estimate."""

from __future__ import annotations

from mlxctl.model_options import ModelOptions
from mlxctl.scheduler.policy import estimate_bytes
from mlxctl.settings import Settings
from tests.scheduler.fakes import MB, record


def test_a_draft_model_is_counted_in_the_estimate_and_passed_to_the_worker() -> None:
    target = record("big", size_mb=1000, kv=2000, ctx=8192)
    draft = record("small", size_mb=100, kv=500, ctx=8192)
    plain = ModelOptions(kv_context=4096, max_batch=2)
    with_draft = plain.with_draft(draft)
    # Its weights and one sequence's KV: it drafts only while a request runs alone.
    extra = 100 * MB + 500 * 4096
    assert estimate_bytes(target, with_draft) == estimate_bytes(target, plain) + extra
    argv = with_draft.worker_argv()
    assert argv[argv.index("--draft-model") + 1] == "small"
    assert argv[argv.index("--num-draft-tokens") + 1] == "3"
    assert "--prompt-lookup" not in argv
    assert "--draft-model" not in plain.worker_argv()
    assert "--num-draft-tokens" not in plain.worker_argv()


def test_prompt_lookup_comes_from_the_settings() -> None:
    settings = Settings(worker_prompt_lookup=True, worker_num_draft_tokens=5)
    argv = ModelOptions.from_settings(settings).worker_argv()
    assert "--prompt-lookup" in argv
    assert argv[argv.index("--num-draft-tokens") + 1] == "5"
