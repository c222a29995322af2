"""The Responses API's output: the typed stream events and the response object.

`Output` turns a turn's pieces into output items and, for streaming clients, the
event sequence OpenAI sends (each event with its `sequence_number`):

    response.created, response.in_progress
    per reasoning item:  output_item.added, then reasoning_summary_part.added,
                         reasoning_summary_text.delta…/done, reasoning_summary_part.done
                         (summary asked for) or content_part.added,
                         reasoning_text.delta…/done, content_part.done; output_item.done
    per message:         output_item.added, content_part.added, output_text.delta…,
                         output_text.done, content_part.done, output_item.done
    per function call:   output_item.added, function_call_arguments.delta…/done,
                         output_item.done
    response.completed | response.incomplete (max_output_tokens) | response.failed

A non-streaming reply runs the same `Output` and keeps only the final object.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from mlxctl.api.errors import to_api_error
from mlxctl.api.openai.responses_items import Item, new_id
from mlxctl.api.openai.responses_request import Plan
from mlxctl.api.turn import Finish, Piece, Text, ToolArgs, ToolStart

Event = dict[str, Any]


@dataclass
class Output:
    plan: Plan
    model: str
    id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    items: list[Item] = field(default_factory=list)
    status: str = "in_progress"
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    incomplete: dict[str, Any] | None = None
    _sequence: int = 0
    _open: str | None = None  # "reasoning" | "message" | "tool:<index>"
    _tools: dict[int, Item] = field(default_factory=dict)

    # --- the events ------------------------------------------------------------------

    def start(self) -> list[Event]:
        return [
            self._event("response.created", response=self.response()),
            self._event("response.in_progress", response=self.response()),
        ]

    def feed(self, piece: Piece) -> list[Event]:
        if isinstance(piece, Finish):
            return [*self._close(), *self._finish(piece)]
        if isinstance(piece, ToolArgs):
            item = self._tools[piece.index]
            item["arguments"] += piece.json
            name = "response.function_call_arguments.delta"
            return [self._event(name, **self._at(item), delta=piece.json)]
        if isinstance(piece, ToolStart):
            kind = f"tool:{piece.index}"
        else:
            kind = "reasoning" if piece.thinking else "message"
        events = [] if kind == self._open else [*self._close(), *self._begin(kind, piece)]
        if isinstance(piece, Text):
            events.extend(self._text(piece))
        return events

    def fail(self, exc: BaseException) -> list[Event]:
        error = to_api_error(exc)
        self.status = "failed"
        self.error = {"code": error.code or "server_error", "message": error.message}
        return [self._event("response.failed", response=self.response())]

    # --- the response object -----------------------------------------------------------

    def response(self) -> dict[str, Any]:
        done = self.status in ("completed", "incomplete")
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "completed_at": int(time.time()) if self.status == "completed" else None,
            "status": self.status,
            "model": self.model,
            "output": [dict(item) for item in self.items] if done else [],
            "error": self.error,
            "incomplete_details": self.incomplete,
            "usage": self.usage,
            "background": False,
            "user": None,
            **self.plan.echo,
        }

    # --- items -------------------------------------------------------------------------

    def _begin(self, kind: str, piece: Text | ToolStart) -> list[Event]:
        self._open = kind
        index = len(self.items)
        if isinstance(piece, ToolStart):
            item: Item = {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": piece.id,
                "name": piece.name,
                "arguments": "",
                "status": "in_progress",
            }
            if piece.name in self.plan.namespaces:
                item["namespace"] = self.plan.namespaces[piece.name]
            self._tools[piece.index] = item
        elif kind == "reasoning":
            item = {"type": "reasoning", "id": new_id("rs"), "summary": [], "content": []}
        else:
            item = {
                "type": "message",
                "id": new_id("msg"),
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
        self.items.append(item)
        events = [self._event("response.output_item.added", output_index=index, item=dict(item))]
        if kind == "message":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            item["content"].append(part)
            events.append(self._part("response.content_part.added", item, part))
        elif kind == "reasoning" and self.plan.summary:
            item["summary"].append({"type": "summary_text", "text": ""})
            events.append(self._summary("response.reasoning_summary_part.added", item))
        elif kind == "reasoning":
            part = {"type": "reasoning_text", "text": ""}
            item["content"].append(part)
            events.append(self._part("response.content_part.added", item, part))
        return events

    def _text(self, piece: Text) -> list[Event]:
        item = self.items[-1]
        if piece.thinking:
            item["content"] = item["content"] or [{"type": "reasoning_text", "text": ""}]
            item["content"][0]["text"] += piece.thinking
            if self.plan.summary:
                item["summary"][0]["text"] += piece.thinking
                name = "response.reasoning_summary_text.delta"
                return [self._event(name, **self._at(item), summary_index=0, delta=piece.thinking)]
            name = "response.reasoning_text.delta"
            return [self._event(name, **self._at(item), content_index=0, delta=piece.thinking)]
        item["content"][0]["text"] += piece.content
        return [
            self._event(
                "response.output_text.delta",
                **self._at(item),
                content_index=0,
                delta=piece.content,
                logprobs=[],
            )
        ]

    def _close(self) -> list[Event]:
        """The done events of the open item, if any."""
        if self._open is None:
            return []
        kind, self._open = self._open, None
        item = self.items[-1]
        events: list[Event] = []
        if kind == "message":
            part = item["content"][0]
            events.append(
                self._event(
                    "response.output_text.done",
                    **self._at(item),
                    content_index=0,
                    text=part["text"],
                    logprobs=[],
                )
            )
            events.append(self._part("response.content_part.done", item, part))
        elif kind == "reasoning" and self.plan.summary:
            text = item["summary"][0]["text"]
            name = "response.reasoning_summary_text.done"
            events.append(self._event(name, **self._at(item), summary_index=0, text=text))
            events.append(self._summary("response.reasoning_summary_part.done", item))
        elif kind == "reasoning":
            part = item["content"][0]
            name = "response.reasoning_text.done"
            events.append(self._event(name, **self._at(item), content_index=0, text=part["text"]))
            events.append(self._part("response.content_part.done", item, part))
        else:
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    **self._at(item),
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
        if "status" in item:
            item["status"] = "completed"
        index = len(self.items) - 1
        events.append(self._event("response.output_item.done", output_index=index, item=item))
        return events

    def _finish(self, finish: Finish) -> list[Event]:
        self.usage = {
            "input_tokens": finish.prompt_tokens,
            "input_tokens_details": {"cached_tokens": finish.cached_tokens},
            "output_tokens": finish.completion_tokens,
            # The worker counts the reasoning and the answer's tokens together.
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": finish.prompt_tokens + finish.completion_tokens,
        }
        if finish.reason == "length":
            self.status = "incomplete"
            self.incomplete = {"reason": "max_output_tokens"}
            if self.items and "status" in self.items[-1]:
                self.items[-1]["status"] = "incomplete"  # the item the limit cut short
            return [self._event("response.incomplete", response=self.response())]
        self.status = "completed"
        return [self._event("response.completed", response=self.response())]

    def _at(self, item: Item) -> dict[str, Any]:
        return {"item_id": item["id"], "output_index": self.items.index(item)}

    def _part(self, name: str, item: Item, part: dict[str, Any]) -> Event:
        return self._event(name, **self._at(item), content_index=0, part=dict(part))

    def _summary(self, name: str, item: Item) -> Event:
        part = dict(item["summary"][0])
        return self._event(name, **self._at(item), summary_index=0, part=part)

    def _event(self, kind: str, /, **data: Any) -> Event:
        event = {"type": kind, "sequence_number": self._sequence, **data}
        self._sequence += 1
        return event
