"""Training text for the factory's trained pair: the tokenizer corpus plus edit examples.

Two kinds of rows, both from Python's own standard library (nothing is downloaded):

- plain windows of the tokenizer corpus (`tokenizer.corpus()`: stdlib sources);
- "rewrite this code with one change" chats: a user message holding a snippet and a rename,
  and an assistant answer that repeats the snippet with the rename applied. These teach a
  small model to copy its context, which is what draft models and n-gram drafting win on.

Held-out snippets for measuring come from other stdlib modules (`HELD_OUT_MODULES`).
Everything is drawn from a seeded `random.Random`, so rows are the same for the same seed.
"""

from __future__ import annotations

import keyword
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from mlxctl.factory.tokenizer import corpus, module_sources

__all__ = ["HELD_OUT_MODULES", "EditExample", "edit_examples"]

# Not in the tokenizer corpus: snippets the trained models never saw.
HELD_OUT_MODULES = (
    "bisect", "contextlib", "copy", "enum", "fnmatch", "glob", "heapq", "operator", "pprint",
    "queue", "reprlib", "sched", "selectors", "shlex", "tempfile", "tokenize", "traceback",
)  # fmt: skip

_IDENTIFIER = re.compile(r"\b[a-z_][a-z0-9_]{2,}\b")
_KEYWORDS = frozenset([*keyword.kwlist, "self", "cls"])
_NEW_NAMES = ("value", "item", "result", "count", "data", "name", "total", "entry", "node")


@dataclass(frozen=True)
class EditExample:
    """One rewrite request: the chat messages and the answer that copies the snippet."""

    instruction: str
    snippet: str
    answer: str

    def messages(self) -> list[dict[str, str]]:
        prompt = f"{self.instruction}\n```python\n{self.snippet}\n```"
        return [{"role": "user", "content": prompt}]

    def reply(self) -> str:
        return f"```python\n{self.answer}\n```"


def _snippets(texts: Sequence[str], min_lines: int, max_lines: int) -> list[str]:
    """Blocks of code between blank lines, `min_lines` to `max_lines` long: code, not prose."""
    found: list[str] = []
    for text in texts:
        for block in re.split(r"\n\s*\n", text):
            lines = [line.rstrip() for line in block.strip("\n").splitlines()]
            if not min_lines <= len(lines) <= max_lines or "\t" in block:
                continue
            if '"""' in block or "'''" in block:
                continue
            comments = sum(line.lstrip().startswith("#") for line in lines)
            if comments * 3 <= len(lines):
                found.append("\n".join(lines))
    return found


def _code_names(snippet: str) -> list[str]:
    """Identifiers used in code (comments stripped), sorted: the candidates for a rename."""
    code = "\n".join(line.split("#", 1)[0] for line in snippet.splitlines())
    return sorted({m for m in _IDENTIFIER.findall(code) if m not in _KEYWORDS})


def edit_examples(
    count: int,
    *,
    seed: int,
    held_out: bool = False,
    min_lines: int = 3,
    max_lines: int = 8,
) -> list[EditExample]:
    """`count` rename requests over training (or held-out) snippets, drawn from `seed`."""
    texts = module_sources(HELD_OUT_MODULES) if held_out else corpus()
    pool = _snippets(texts, min_lines, max_lines)
    rng = random.Random(seed)
    examples: list[EditExample] = []
    while len(examples) < count:
        snippet = rng.choice(pool)
        names = _code_names(snippet)
        if not names:
            continue
        old = rng.choice(names)
        new = rng.choice([n for n in _NEW_NAMES if n != old and n not in names] or ["renamed"])
        answer = re.sub(rf"\b{re.escape(old)}\b", new, snippet)
        instruction = f"Rewrite this code with one change: rename `{old}` to `{new}`."
        examples.append(EditExample(instruction, snippet, answer))
    return examples
