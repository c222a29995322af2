"""ModelOptions: speculative decoding's flags reach the worker and its draft the estimate."""

from __future__ import annotations

from dataclasses import replace

from mlxctl.model_options import ModelOptions, OptionsSource
from mlxctl.registry import ModelRecord
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


def test_a_draft_model_from_a_config_section_is_counted_through_the_registry() -> None:
    class Section:
        def options_for(
            self, record: ModelRecord, defaults: ModelOptions, load_preset: str | None = None
        ) -> ModelOptions:
            return replace(defaults, draft_model="sma")  # a prefix, as a user may write it

    class Registered:
        def list(self) -> list[ModelRecord]:
            return [record("small", size_mb=100, kv=500, ctx=8192), record("big", size_mb=1000)]

    target = record("big", size_mb=1000, kv=2000, ctx=8192)
    counted = OptionsSource(ModelOptions(kv_context=4096), Section(), records=Registered())
    options = counted.for_model(target)
    assert options.draft_model == "small"
    assert options.draft_bytes == 100 * MB + 500 * 4096
    # Without the registry the name cannot be sized: nothing is added.
    assert OptionsSource(ModelOptions(), Section()).for_model(target).draft_bytes == 0
