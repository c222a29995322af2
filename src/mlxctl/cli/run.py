"""`mlxctl run MODEL [PROMPT]`: chat with a model through the daemon, as `ollama run` does.

With a prompt (arguments, piped stdin, or both) it answers once and exits; on a
terminal without one it holds a conversation: `/bye` or Ctrl-D leaves, `/clear`
forgets the conversation, Ctrl-C stops a reply. The answer goes to stdout; the
model's reasoning and `--verbose` timings go to stderr, so pipes get the answer only.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from mlxctl.client import DaemonClient
from mlxctl.client.chat import Reply, chat
from mlxctl.errors import InvalidInput

HELP = """Available commands:
  /set system TEXT  set the system prompt (clears the conversation)
  /clear            forget the conversation
  /bye              leave (Ctrl-D works too)
  /?                this help
Start and end a message with \"\"\" to write several lines."""


@click.command()
@click.argument("model")
@click.argument("prompt", nargs=-1)
@click.option("--system", help="System prompt.")
@click.option("--temperature", type=click.FloatRange(0, 2), help="Sampling temperature.")
@click.option("--seed", type=int, help="Seed for reproducible sampling.")
@click.option("--max-tokens", type=click.IntRange(1), help="Stop each reply after N tokens.")
@click.option("--keep-alive", help="How long the model stays loaded when idle (5m, 1h, -1).")
@click.option("--think/--no-think", default=None, help="Ask a reasoning model to think, or not.")
@click.option("--hide-thinking", is_flag=True, help="Do not print the model's reasoning.")
@click.option("--format", "fmt", help="'json', or a JSON schema the reply must follow.")
@click.option("--verbose", is_flag=True, help="Print timings and token rates after each reply.")
def run(
    model: str,
    prompt: tuple[str, ...],
    system: str | None,
    temperature: float | None,
    seed: int | None,
    max_tokens: int | None,
    keep_alive: str | None,
    think: bool | None,
    hide_thinking: bool,
    fmt: str | None,
    verbose: bool,
) -> None:
    """Chat with MODEL: answer PROMPT and exit, or hold a conversation when none is given.

    The daemon (`mlxctl serve`) loads MODEL on demand. Piped input is read as the
    prompt (before any PROMPT words): `cat notes.txt | mlxctl run qwen "Summarise:"`.
    """
    piped = "" if sys.stdin.isatty() else sys.stdin.read()
    text = "\n\n".join(part for part in (piped.strip(), " ".join(prompt).strip()) if part)
    base: dict[str, Any] = {"model": model, "options": _options(temperature, seed, max_tokens)}
    if keep_alive is not None:
        base["keep_alive"] = keep_alive
    if think is not None:
        base["think"] = think
    if fmt is not None:
        base["format"] = _format(fmt)
    session = _Session(base, system, show_thinking=not hide_thinking, verbose=verbose)
    with DaemonClient.from_settings() as client:
        if text:
            session.turn(client, text)
        elif sys.stdin.isatty():
            client.load(model, keep_alive)
            session.converse(client)
        else:
            raise click.UsageError("nothing to send: give a PROMPT or pipe one in")


class _Session:
    """The conversation so far and how replies are shown."""

    def __init__(
        self, base: dict[str, Any], system: str | None, *, show_thinking: bool, verbose: bool
    ) -> None:
        self.base = base
        self.system = system
        self.messages: list[dict[str, Any]] = []
        self.show_thinking = show_thinking
        self.verbose = verbose

    def turn(self, client: DaemonClient, text: str) -> Reply:
        """Send one user message; the reply joins the conversation when it completes."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        asked = [*self.messages, {"role": "user", "content": text}]
        thinking = _Thinking(enabled=self.show_thinking)

        def content(piece: str) -> None:
            thinking.close()
            _out(piece)

        try:
            reply = chat(
                client,
                {**self.base, "messages": [*head, *asked]},
                on_content=content,
                on_thinking=thinking.write,
            )
        finally:
            thinking.close()
        if reply.content and not reply.content.endswith("\n"):
            _out("\n")
        for call in reply.tool_calls:
            _out(json.dumps(call) + "\n")
        self.messages = [*asked, {"role": "assistant", "content": reply.content}]
        if self.verbose:
            _print_stats(reply)
        return reply

    def converse(self, client: DaemonClient) -> None:
        click.echo(f"Chatting with {self.base['model']}. /? for help, /bye to leave.", err=True)
        while True:
            try:
                text = _read_message()
            except EOFError:
                click.echo(err=True)
                return
            except KeyboardInterrupt:
                click.echo("\nUse Ctrl-D or /bye to leave.", err=True)
                continue
            if not text.strip():
                continue
            if text.startswith("/"):
                if not self._command(text.strip()):
                    return
                continue
            try:
                self.turn(client, text)
            except KeyboardInterrupt:
                click.echo("\n(stopped)", err=True)

    def _command(self, line: str) -> bool:
        """Apply a /command; False means leave."""
        word, _, rest = line.partition(" ")
        if word in ("/bye", "/exit", "/quit"):
            return False
        if word == "/clear":
            self.messages = []
            click.echo("Cleared the conversation.", err=True)
        elif word == "/set" and rest.startswith("system "):
            self.system, self.messages = rest.removeprefix("system ").strip(), []
            click.echo("Set the system prompt.", err=True)
        elif word in ("/?", "/help"):
            click.echo(HELP, err=True)
        else:
            click.echo(f"Unknown command {word!r}. /? for help.", err=True)
        return True


class _Thinking:
    """Reasoning text on stderr, dimmed on a terminal, framed so it reads apart from the answer."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.open = False
        self.dim = sys.stderr.isatty()

    def write(self, piece: str) -> None:
        if not self.enabled:
            return
        if not self.open:
            self.open = True
            sys.stderr.write("\x1b[2mThinking...\n" if self.dim else "Thinking...\n")
        sys.stderr.write(piece)
        sys.stderr.flush()

    def close(self) -> None:
        if self.open:
            self.open = False
            sys.stderr.write("\n...done thinking.\n\n" + ("\x1b[0m" if self.dim else ""))
            sys.stderr.flush()


def _read_message() -> str:
    """One message from the terminal; a line of \"\"\" opens and closes a multi-line one."""
    first = input(">>> ")
    if not first.lstrip().startswith('"""'):
        return first
    lines = [first.lstrip()[3:]]
    while not lines[-1].rstrip().endswith('"""'):
        lines.append(input("... "))
    lines[-1] = lines[-1].rstrip()[:-3]
    return "\n".join(lines).strip()


def _options(temperature: float | None, seed: int | None, max_tokens: int | None) -> dict[str, Any]:
    chosen = {"temperature": temperature, "seed": seed, "num_predict": max_tokens}
    return {k: v for k, v in chosen.items() if v is not None}


def _format(value: str) -> Any:
    if value == "json":
        return "json"
    try:
        schema = json.loads(value)
    except json.JSONDecodeError as e:
        raise InvalidInput(f"--format must be 'json' or a JSON schema ({e})") from None
    if not isinstance(schema, dict):
        raise InvalidInput("--format must be 'json' or a JSON schema object")
    return schema


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _print_stats(reply: Reply) -> None:
    """Ollama's `--verbose` block, from the daemon's own measurements."""
    stats = reply.stats

    def rate(count: str, duration: str) -> str:
        value = reply.rate(count, duration)
        return "n/a" if value is None else f"{value:.2f} tokens/s"

    rows = [
        ("total duration", f"{reply.seconds('total_duration'):.3f}s"),
        ("load duration", f"{reply.seconds('load_duration'):.3f}s"),
        ("prompt eval count", f"{stats.get('prompt_eval_count', 0)} token(s)"),
        ("prompt eval duration", f"{reply.seconds('prompt_eval_duration'):.3f}s"),
        ("prompt eval rate", rate("prompt_eval_count", "prompt_eval_duration")),
        ("eval count", f"{stats.get('eval_count', 0)} token(s)"),
        ("eval duration", f"{reply.seconds('eval_duration'):.3f}s"),
        ("eval rate", rate("eval_count", "eval_duration")),
    ]
    for name, value in rows:
        click.echo(f"{name + ':':<22}{value}", err=True)
