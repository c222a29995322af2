"""Byte-level BPE tokenizers, special tokens and chat templates for factory models.

A tokenizer is trained locally with `tokenizers` on a fixed corpus: the source text of a
fixed list of Python standard-library modules plus a short multilingual section. The same
Python build therefore always yields byte-identical files; another Python version may
yield other merges (ordinary token ids differ, special tokens keep their positions).

Four chat families exist. `chatml` (qwen2) follows Qwen2.5: `<|im_start|>`/`<|im_end|>`,
tools in the system prompt, tool calls as `<tool_call>` JSON, plus `<think>`. `llama3`
follows Llama 3: header tokens, `<|eot_id|>`, BOS added by the post-processor, tool calls
as a bare JSON object and tool results under the `ipython` role. `harmony` (gpt_oss)
follows gpt-oss: `<|start|>ROLE<|channel|>CHANNEL<|message|>...<|end|>`, reasoning on
the `analysis` channel, tool calls on `commentary` ending in `<|call|>`.
`chatml-vision` (qwen2_5_vl) adds Qwen2.5-VL's vision tokens and renders image parts as
`<|vision_start|><|image_pad|><|vision_end|>`.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

__all__ = [
    "FAMILIES",
    "ChatFamily",
    "TokenizerInfo",
    "corpus",
    "module_sources",
    "tokenizer_info",
    "train_bpe",
    "write_tokenizer",
]

# Modules chosen for plenty of English prose (docstrings) next to ordinary Python code.
_CORPUS_MODULES = (
    "argparse", "asyncio.events", "calendar", "collections", "csv", "dataclasses",
    "datetime", "decimal", "difflib", "email.message", "fractions", "functools",
    "http.client", "inspect", "json", "logging", "pathlib", "pydoc", "random", "shutil",
    "statistics", "string", "subprocess", "tarfile", "textwrap", "threading", "typing",
    "unittest.case", "zipfile",
)  # fmt: skip

# Written for this corpus so common non-ASCII text and JSON get merges of their own.
_EXTRA_TEXT = """\
Le modèle répond rapidement; la mémoire est libérée après cinq minutes d'inactivité.
Das Modell wird geladen, während die Warteschlange größer wird. Grüße aus München!
El servidor devolvió un error: la solicitud tardó demasiado. ¿Quieres intentarlo otra vez?
Модель загружена, ответ готов. Спасибо за ожидание!
モデルを読み込んでいます。しばらくお待ちください。こんにちは、世界。
模型已经加载完成，请输入你的问题。你好，世界！
모델이 준비되었습니다. 질문을 입력하세요.
Θέλετε να συνεχίσετε; Η απάντηση είναι έτοιμη.
Emoji are bytes too: 🙂 🚀 ✅ ❤️ 👍🏽 — and so are “curly quotes” and ellipses…
{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
{"role": "assistant", "content": "The temperature in Paris is 21 degrees."}
{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}
"""


def module_sources(names: Sequence[str]) -> list[str]:
    """The source text of each stdlib module in `names` that has a .py file, in order."""
    texts: list[str] = []
    for name in names:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if origin and origin.endswith(".py") and Path(origin).is_file():
            texts.append(Path(origin).read_text(encoding="utf-8"))
    return texts


def corpus() -> list[str]:
    """The training texts, in a fixed order; modules without source files are skipped."""
    return [*module_sources(_CORPUS_MODULES), _EXTRA_TEXT]


@dataclass(frozen=True)
class SpecialToken:
    content: str
    special: bool = True  # False keeps it in text decoded with skip_special_tokens


@dataclass(frozen=True)
class ChatFamily:
    """Special tokens, their roles and the chat template of one model family."""

    name: str
    tokens: tuple[SpecialToken, ...]
    bos: str | None
    eos: str  # the end-of-turn token: generation stops here
    pad: str
    extra_eos: tuple[str, ...]  # further stop tokens for generation_config.json
    add_bos: bool
    digits: str  # regex quantifier for digits per pre-token: "" is one, "{1,3}" up to three
    nfc: bool  # transformers' Qwen2Tokenizer forces NFC, so chatml tokenizer.json says so too
    chat_template: str


@dataclass(frozen=True)
class TokenizerInfo:
    """What config.json and generation_config.json need to know about a written tokenizer."""

    size: int  # number of ids, specials included
    bos_token_id: int | None
    eos_token_id: int
    eos_token_ids: tuple[int, ...]  # end of turn first
    pad_token_id: int
    special_ids: Mapping[str, int]  # every token of the family, by content


# Every literal is emitted through `{{- ... }}` and every tag strips whitespace on its left,
# so the Python line layout below never leaks into the rendered prompt.
_TEXT_MACRO = (
    "{%- macro text(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- elif content is iterable -%}"
    "{%- for part in content -%}{%- if part.type == 'text' -%}{{- part.text -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
)

# Qwen2-VL's rendering of content parts: each image (video) becomes one placeholder token
# between vision markers, which the processor expands to the image's patch count.
_VISION_TEXT_MACRO = (
    "{%- macro text(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- elif content is iterable -%}"
    "{%- for part in content -%}"
    "{%- if part.type == 'image' or part.type == 'image_url' or 'image' in part -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part.type == 'video' or 'video' in part -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif part.type == 'text' -%}{{- part.text -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
)

_CHATML_BODY = (
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set system_text = text(messages[0].content) -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}"
    "{%- set system_text = 'You are a helpful assistant.' -%}{%- set turns = messages -%}"
    "{%- endif -%}"
    "{{- '<|im_start|>system\\n' + system_text -}}"
    "{%- if tools -%}"
    "{{- '\\n\\n# Tools\\n\\nYou may call one or more functions to answer. "
    "Their signatures are listed inside <tools></tools>:\\n<tools>' -}}"
    "{%- for tool in tools -%}{{- '\\n' + (tool | tojson) -}}{%- endfor -%}"
    "{{- '\\n</tools>\\n\\nFor each call, answer with a JSON object holding the function "
    'name and its arguments inside <tool_call></tool_call>:\\n<tool_call>\\n{"name": '
    '<function-name>, "arguments": <args-json-object>}\\n</tool_call>\' -}}'
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- for message in turns -%}"
    "{%- if message.role == 'user' or message.role == 'system' -%}"
    "{{- '<|im_start|>' + message.role + '\\n' + text(message.content) + '<|im_end|>\\n' -}}"
    "{%- elif message.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if message.reasoning_content -%}"
    "{{- '<think>\\n' + message.reasoning_content + '\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{{- text(message.content) -}}"
    "{%- for tool_call in message.tool_calls or [] -%}"
    "{%- if tool_call.function is defined -%}{%- set tool_call = tool_call.function -%}"
    "{%- endif -%}"
    "{%- if not loop.first or message.content -%}{{- '\\n' -}}{%- endif -%}"
    '{{- \'<tool_call>\\n{"name": "\' + tool_call.name + \'", "arguments": \' -}}'
    "{%- if tool_call.arguments is string -%}{{- tool_call.arguments -}}"
    "{%- else -%}{{- tool_call.arguments | tojson -}}{%- endif -%}"
    "{{- '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- elif message.role == 'tool' -%}"
    "{%- if loop.first or turns[loop.index0 - 1].role != 'tool' -%}"
    "{{- '<|im_start|>user' -}}{%- endif -%}"
    "{{- '\\n<tool_response>\\n' + text(message.content) + '\\n</tool_response>' -}}"
    "{%- if loop.last or turns[loop.index0 + 1].role != 'tool' -%}"
    "{{- '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
)
_THINKING_SWITCH = (
    "{%- if enable_thinking is defined and not enable_thinking -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}"
)
_CHATML_TEMPLATE = _TEXT_MACRO + _CHATML_BODY + _THINKING_SWITCH + "{%- endif -%}"
# Qwen2.5-VL does not think: no empty think block when thinking is switched off.
_CHATML_VISION_TEMPLATE = _VISION_TEXT_MACRO + _CHATML_BODY + "{%- endif -%}"

_LLAMA3_TEMPLATE = (
    _TEXT_MACRO + "{%- macro header(role) -%}"
    "{{- '<|start_header_id|>' + role + '<|end_header_id|>\\n\\n' -}}"
    "{%- endmacro -%}"
    "{{- bos_token -}}"
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set system_text = text(messages[0].content) -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set system_text = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- if system_text or tools -%}"
    "{{- header('system') + system_text -}}"
    "{%- if tools -%}"
    "{%- if system_text -%}{{- '\\n\\n' -}}{%- endif -%}"
    "{{- 'You can call the functions below. To call one, reply with only a JSON object '"
    ' + \'of the form {"name": function name, "parameters": {argument: value}}.\' -}}'
    "{%- for tool in tools -%}{{- '\\n\\n' + (tool | tojson(indent=4)) -}}{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|eot_id|>' -}}"
    "{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- if message.role == 'assistant' -%}"
    "{{- header('assistant') + text(message.content) -}}"
    "{%- for tool_call in message.tool_calls or [] -%}"
    "{%- if tool_call.function is defined -%}{%- set tool_call = tool_call.function -%}"
    "{%- endif -%}"
    "{%- if not loop.first or message.content -%}{{- '\\n' -}}{%- endif -%}"
    '{{- \'{"name": "\' + tool_call.name + \'", "parameters": \' -}}'
    "{%- if tool_call.arguments is string -%}{{- tool_call.arguments -}}"
    "{%- else -%}{{- tool_call.arguments | tojson -}}{%- endif -%}"
    "{{- '}' -}}"
    "{%- endfor -%}"
    "{{- '<|eot_id|>' -}}"
    "{%- elif message.role == 'tool' or message.role == 'ipython' -%}"
    "{{- header('ipython') + text(message.content) + '<|eot_id|>' -}}"
    "{%- else -%}"
    "{{- header(message.role) + text(message.content) + '<|eot_id|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- header('assistant') -}}{%- endif -%}"
)


# Harmony (gpt-oss): a system header, a developer message with the instructions and the
# tools as a TypeScript namespace, then one message per channel; calls end in <|call|>.
_HARMONY_TEMPLATE = (
    _TEXT_MACRO + "{%- macro msg(header, channel, body, end) -%}"
    "{{- '<|start|>' + header + '<|channel|>' + channel + '<|message|>' + body + end -}}"
    "{%- endmacro -%}"
    "{%- if messages and messages[0].role in ('system', 'developer') -%}"
    "{%- set instructions = text(messages[0].content) -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set instructions = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- set effort = reasoning_effort if reasoning_effort is defined else 'medium' -%}"
    "{{- '<|start|>system<|message|>You are a helpful assistant.\\nReasoning: ' + effort -}}"
    "{{- '\\n\\n# Valid channels: analysis, commentary, final. Channel must be included for "
    "every message.' -}}"
    "{%- if tools -%}"
    "{{- '\\nCalls to these tools must go to the commentary channel: \\'functions\\'.' -}}"
    "{%- endif -%}"
    "{{- '<|end|>' -}}"
    "{%- if instructions or tools -%}"
    "{{- '<|start|>developer<|message|>' -}}"
    "{%- if instructions -%}{{- '# Instructions\\n\\n' + instructions -}}{%- endif -%}"
    "{%- if tools -%}"
    "{%- if instructions -%}{{- '\\n\\n' -}}{%- endif -%}"
    "{{- '# Tools\\n\\n## functions\\n\\nnamespace functions {\\n' -}}"
    "{%- for tool in tools -%}"
    "{%- set fn = tool.function if tool.function is defined else tool -%}"
    "{{- '\\n// ' + (fn.description or fn.name) + '\\ntype ' + fn.name + ' = (_: ' -}}"
    "{{- (fn.parameters or {}) | tojson -}}{{- ') => any;\\n' -}}"
    "{%- endfor -%}"
    "{{- '\\n} // namespace functions' -}}"
    "{%- endif -%}"
    "{{- '<|end|>' -}}"
    "{%- endif -%}"
    "{%- set ns = namespace(tool='') -%}"
    "{%- for message in turns -%}"
    "{%- if message.role == 'user' -%}"
    "{{- '<|start|>user<|message|>' + text(message.content) + '<|end|>' -}}"
    "{%- elif message.role == 'assistant' -%}"
    "{%- set thinking = message.reasoning_content or message.thinking or '' -%}"
    "{%- if thinking and loop.last -%}{{- msg('assistant', 'analysis', thinking, '<|end|>') -}}"
    "{%- endif -%}"
    "{%- for call in message.tool_calls or [] -%}"
    "{%- set call = call.function if call.function is defined else call -%}"
    "{%- set ns.tool = call.name -%}"
    "{%- set args = call.arguments if call.arguments is string else call.arguments | tojson -%}"
    "{{- msg('assistant', 'commentary to=functions.' + call.name + ' <|constrain|>json', args,"
    " '<|call|>') -}}"
    "{%- endfor -%}"
    "{%- set content = text(message.content) -%}"
    "{%- if content -%}{{- msg('assistant', 'final', content, '<|end|>') -}}{%- endif -%}"
    "{%- elif message.role == 'tool' -%}"
    "{{- msg('functions.' + (message.name or ns.tool) + ' to=assistant', 'commentary',"
    " text(message.content), '<|end|>') -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|start|>assistant' -}}{%- endif -%}"
)


def _tokens(special: str, plain: str = "") -> tuple[SpecialToken, ...]:
    """Space-separated token lists; `plain` ones survive skip_special_tokens."""
    return (
        *(SpecialToken(t) for t in special.split()),
        *(SpecialToken(t, False) for t in plain.split()),
    )


_CHATML = ChatFamily(
    name="chatml",
    tokens=_tokens(
        "<|endoftext|> <|im_start|> <|im_end|>", "<tool_call> </tool_call> <think> </think>"
    ),
    bos=None,
    eos="<|im_end|>",
    pad="<|endoftext|>",
    extra_eos=("<|endoftext|>",),
    add_bos=False,
    digits="",
    nfc=True,
    chat_template=_CHATML_TEMPLATE,
)

# Qwen2.5-VL: chatml plus the grounding and vision tokens, in Qwen's order.
_CHATML_VISION = replace(
    _CHATML,
    name="chatml-vision",
    tokens=_tokens(
        "<|endoftext|> <|im_start|> <|im_end|> <|object_ref_start|> <|object_ref_end|>"
        " <|box_start|> <|box_end|> <|quad_start|> <|quad_end|> <|vision_start|>"
        " <|vision_end|> <|vision_pad|> <|image_pad|> <|video_pad|>",
        "<tool_call> </tool_call>",
    ),
    chat_template=_CHATML_VISION_TEMPLATE,
)

FAMILIES: dict[str, ChatFamily] = {
    "chatml": _CHATML,
    "chatml-vision": _CHATML_VISION,
    "llama3": ChatFamily(
        name="llama3",
        tokens=_tokens(
            "<|begin_of_text|> <|end_of_text|> <|start_header_id|> <|end_header_id|>"
            " <|eom_id|> <|eot_id|> <|python_tag|>"
        ),
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad="<|end_of_text|>",
        extra_eos=("<|end_of_text|>", "<|eom_id|>"),
        add_bos=True,
        digits="{1,3}",
        nfc=False,
        chat_template=_LLAMA3_TEMPLATE,
    ),
    "harmony": ChatFamily(
        name="harmony",
        tokens=_tokens(
            "<|startoftext|> <|endoftext|> <|start|> <|end|> <|message|> <|channel|>"
            " <|constrain|> <|return|> <|call|>"
        ),
        bos="<|startoftext|>",
        eos="<|return|>",
        pad="<|endoftext|>",
        extra_eos=("<|call|>", "<|endoftext|>"),
        add_bos=False,
        digits="{1,3}",
        nfc=False,
        chat_template=_HARMONY_TEMPLATE,
    ),
}


def _split_pattern(digits: str) -> str:
    # The Qwen2/Llama 3 pre-token split; transformers rebuilds qwen2 tokenizers with it.
    return (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
        + digits
        + r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    )


@functools.lru_cache(maxsize=8)
def train_bpe(family: str, vocab_size: int) -> str:
    """A byte-level BPE for `family` with at most `vocab_size` tokens, no specials, as JSON.

    Cached per process: training takes under a second, but models are made often.
    """
    chat = FAMILIES[family]
    tokenizer = Tokenizer(models.BPE())
    if chat.nfc:
        tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_split_pattern(chat.digits)), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    return str(tokenizer.to_str())


def _build(family: ChatFamily, vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer.from_str(train_bpe(family.name, vocab_size))
    # One call per token keeps ids in declaration order, right after the trained vocab.
    for token in family.tokens:
        added = AddedToken(token.content, normalized=False, special=token.special)
        if token.special:
            tokenizer.add_special_tokens([added])
        else:
            tokenizer.add_tokens([added])
    byte_level = processors.ByteLevel(trim_offsets=False)
    if family.add_bos and family.bos is not None:
        bos_id = _token_id(tokenizer, family.bos)
        tokenizer.post_processor = processors.Sequence(
            [
                byte_level,
                processors.TemplateProcessing(
                    single=f"{family.bos}:0 $A:0",
                    pair=f"{family.bos}:0 $A:0 {family.bos}:1 $B:1",
                    special_tokens=[(family.bos, bos_id)],
                ),
            ]
        )
    else:
        tokenizer.post_processor = byte_level
    return tokenizer


def _token_entry(token: SpecialToken) -> dict[str, Any]:
    return {
        "content": token.content,
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
        "special": token.special,
    }


def _token_id(tokenizer: Tokenizer, content: str) -> int:
    token_id = tokenizer.token_to_id(content)
    if token_id is None:
        raise LookupError(f"{content!r} is not in the tokenizer")
    return int(token_id)


def _describe(chat: ChatFamily, tokenizer: Tokenizer) -> TokenizerInfo:
    ids = {t.content: _token_id(tokenizer, t.content) for t in chat.tokens}
    return TokenizerInfo(
        size=int(tokenizer.get_vocab_size(with_added_tokens=True)),
        bos_token_id=ids[chat.bos] if chat.bos is not None else None,
        eos_token_id=ids[chat.eos],
        eos_token_ids=(ids[chat.eos], *(ids[t] for t in chat.extra_eos)),
        pad_token_id=ids[chat.pad],
        special_ids=MappingProxyType(ids),
    )


@functools.lru_cache(maxsize=8)
def tokenizer_info(family: str, vocab_size: int) -> TokenizerInfo:
    """The ids `write_tokenizer` would produce for these arguments, without writing."""
    chat = FAMILIES[family]
    return _describe(chat, _build(chat, vocab_size))


def write_tokenizer(
    out_dir: Path, *, family: str, vocab_size: int, model_max_length: int
) -> TokenizerInfo:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json.

    `vocab_size` bounds the trained BPE; the specials of `family` follow it, so the
    written tokenizer has up to `vocab_size + len(family.tokens)` ids.
    """
    chat = FAMILIES[family]
    tokenizer = _build(chat, vocab_size)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    info = _describe(chat, tokenizer)

    ids = info.special_ids
    specials = [t for t in chat.tokens if t.special]
    config: dict[str, Any] = {
        "add_bos_token": chat.add_bos,
        "add_eos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {str(ids[t.content]): _token_entry(t) for t in chat.tokens},
        "additional_special_tokens": [t.content for t in specials],
        "bos_token": chat.bos,
        "chat_template": chat.chat_template,
        # Anything else rewrites " ." as "." on decode and breaks round trips.
        "clean_up_tokenization_spaces": False,
        "eos_token": chat.eos,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": model_max_length,
        "pad_token": chat.pad,
        "split_special_tokens": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    }
    _write_json(out_dir / "tokenizer_config.json", config)

    by_content = {t.content: t for t in chat.tokens}
    special_map: dict[str, Any] = {
        "additional_special_tokens": [t.content for t in specials],
        "eos_token": _token_entry(by_content[chat.eos]),
        "pad_token": _token_entry(by_content[chat.pad]),
    }
    if chat.bos is not None:
        special_map["bos_token"] = _token_entry(by_content[chat.bos])
    _write_json(out_dir / "special_tokens_map.json", dict(sorted(special_map.items())))
    return info


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
