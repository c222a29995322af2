"""Stop strings are never emitted, including when one spans a token boundary.

The stop strings are cut from the model's actual greedy output, so the test
knows exactly where the boundary falls.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import openai
import pytest

from tests.worker.conftest import Running

_PROMPT = [{"role": "user", "content": "Count the stars."}]


@pytest.fixture(scope="module")
def greedy(worker: Any) -> tuple[str, list[str]]:
    """The greedy reply and its tokens' texts."""
    with worker.client() as client:
        reply = client.chat.completions.create(
            model="m", messages=_PROMPT, max_tokens=40, temperature=0, logprobs=True
        )
    tokens = [entry.token for entry in reply.choices[0].logprobs.content]
    text = reply.choices[0].message.content
    # Single-token texts only add up to the reply while no multi-byte character is split.
    while not text.startswith("".join(tokens)):
        tokens.pop()
    return text, tokens


def _boundary_stop(text: str, tokens: list[str]) -> tuple[str, int]:
    """A 4-char stop string whose first occurrence straddles a token boundary."""
    offset = 0
    for left, right in itertools.pairwise(tokens):
        offset += len(left)
        if len(left) >= 2 and len(right) >= 2:
            stop = left[-2:] + right[:2]
            if text.find(stop) == offset - 2 and offset > 4:
                return stop, offset - 2
    pytest.skip(f"no usable token boundary in {tokens!r}")


def _chat(
    client: openai.OpenAI, stop: str | list[str], *, stream: bool
) -> tuple[str, str | None, Any]:
    """(content, finish_reason, stop_reason: the stop string the worker says it matched)."""
    if not stream:
        reply = client.chat.completions.create(
            model="m", messages=_PROMPT, max_tokens=40, temperature=0, stop=stop
        )
        choice = reply.choices[0]
        return choice.message.content or "", choice.finish_reason, _stop_reason(choice)
    pieces, finish, matched = [], None, None
    for chunk in client.chat.completions.create(
        model="m", messages=_PROMPT, max_tokens=40, temperature=0, stop=stop, stream=True
    ):
        part = chunk.choices[0]
        pieces.append(part.delta.content or "")
        finish = part.finish_reason or finish
        matched = _stop_reason(part) or matched
    return "".join(pieces), finish, matched


def _stop_reason(choice: Any) -> Any:
    return (choice.model_extra or {}).get("stop_reason")


def _cancelled(worker: Running) -> int:
    return int(httpx.get(f"{worker.url}/v1/worker/stats").json()["cancelled_total"])


@pytest.mark.parametrize("stream", [False, True])
def test_stop_across_a_token_boundary_is_never_emitted(
    client: openai.OpenAI, worker: Running, greedy: tuple[str, list[str]], stream: bool
) -> None:
    text, tokens = greedy
    stop, at = _boundary_stop(text, tokens)
    cancelled = _cancelled(worker)
    content, finish, matched = _chat(client, stop, stream=stream)
    # Found in the text, not by the engine's token match: the worker cancelled the rest.
    assert _cancelled(worker) == cancelled + 1
    # Exactly the text before the stop: no part of it leaked, nothing held back lost.
    assert content == text[:at]
    assert finish == "stop" and matched == stop


@pytest.mark.parametrize("stream", [False, True])
def test_stop_on_whole_tokens_ends_in_the_engine(
    client: openai.OpenAI,
    worker: Running,
    tokenizer: Any,
    greedy: tuple[str, list[str]],
    stream: bool,
) -> None:
    text, tokens = greedy

    def ids(s: str) -> list[int]:
        return list(tokenizer.encode(s, add_special_tokens=False))

    # Two whole tokens that encode back to themselves: the engine's stop sequence
    # matches them, ends the generation itself, and the held-back first one is dropped.
    offset = 0
    for left, right in itertools.pairwise(tokens):
        stop = left + right
        whole = len(ids(left)) == len(ids(right)) == 1 and ids(stop) == ids(left) + ids(right)
        if offset > 0 and text.find(stop) == offset and whole:
            break
        offset += len(left)
    else:
        pytest.skip("no two-token span in the greedy output re-encodes to itself")
    cancelled = _cancelled(worker)
    content, finish, matched = _chat(client, ["never-appears", stop], stream=stream)
    assert content == text[:offset]
    assert finish == "stop" and matched == stop
    assert _cancelled(worker) == cancelled  # the engine stopped on its own


def test_completions_honour_stop(client: openai.OpenAI) -> None:
    full = client.completions.create(model="m", prompt="Stars:", max_tokens=30, temperature=0)
    text = full.choices[0].text
    at = next(i for i in range(3, len(text) - 3) if text.find(text[i : i + 3]) == i)
    cut = client.completions.create(
        model="m", prompt="Stars:", max_tokens=30, temperature=0, stop=text[at : at + 3]
    )
    assert cut.choices[0].text == text[:at]
    assert cut.choices[0].finish_reason == "stop"
    assert _stop_reason(cut.choices[0]) == text[at : at + 3]
    assert _stop_reason(full.choices[0]) is None
