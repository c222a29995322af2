"""The fields of OpenAI chat and completion requests that mlxctl reads, named once.

The worker checks each request against them (`worker/requests.py`: anything else is a 400
naming the field) and the OpenAPI document describes exactly these (`api/openapi/openai.py`;
a test compares the two). Imports nothing, so the daemon reads it without loading MLX.
"""

from __future__ import annotations

# Accepted and ignored, whatever their value (`model` is the daemon's business).
IGNORED = frozenset(
    {
        "model",
        "user",
        "metadata",
        "store",
        "service_tier",
        "parallel_tool_calls",
        "prompt_cache_key",
        "safety_identifier",
    }
)
# Both kinds of request.
SAMPLING = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "seed",
        "repetition_penalty",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "stop",
        "max_tokens",
        "stream",
        "stream_options",
        "n",
        "response_format",
        "modalities",  # only ["text"]
    }
)
CHAT = frozenset(
    {
        "messages",
        "tools",
        "tool_choice",
        "logprobs",
        "top_logprobs",
        "max_completion_tokens",
        "chat_template_kwargs",
    }
)
COMPLETION = frozenset({"prompt", "logprobs", "echo", "best_of", "suffix"})
# Test only: forces output through a logits processor (worker/structured.py). The worker
# honours it with MLXCTL_WORKER_TEST_HOOKS=1 and refuses it otherwise; the translating
# dialects pass it through, so their tests can force tool calls and thinking.
TEST_FORCE_FIELD = "mlxctl_test_force"
