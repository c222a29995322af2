"""Client chat templates render in a child process that is killed at its deadline."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mlxctl.engine.templatebox import TemplateSandbox, sandbox_environment
from mlxctl.errors import InvalidInput

MESSAGES = {"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": True}
TEMPLATE = (
    "{% for m in messages %}<{{ m.role }}>{{ m.content | tojson }}{% endfor %}"
    "{% generation %}{% if add_generation_prompt %}<assistant>{% endif %}{% endgeneration %}"
)


@pytest.fixture
def sandbox() -> Iterator[TemplateSandbox]:
    box = TemplateSandbox(timeout=3.0, max_chars=10_000)
    yield box
    box.close()


def test_renders_like_the_in_process_environment(sandbox: TemplateSandbox) -> None:
    expected = sandbox_environment().from_string(TEMPLATE).render(**MESSAGES)
    assert sandbox.render(TEMPLATE, MESSAGES) == expected == '<user>"hi"<assistant>'


@pytest.mark.parametrize(
    ("template", "says"),
    [
        # ~1e10 loop steps: minutes of CPU, stopped at the deadline.
        ("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
         "did not render within 3 s"),
        ("{{ 'x' * 10**10 }}", "memory"),  # 10 GB in one C call
        ("{% for i in range(20000) %}xxxxxxxxxx{% endfor %}", "longer than 10000 characters"),
        ("{{ raise_exception('no system role') }}", "no system role"),
        ("{{ ''.__class__.__mro__ }}", "SecurityError"),
    ],
)  # fmt: skip
def test_hostile_or_broken_templates_are_a_clear_error(
    sandbox: TemplateSandbox, template: str, says: str
) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidInput) as caught:
        sandbox.render(template, MESSAGES)
    assert says in caught.value.message
    assert time.monotonic() - started < 3.0 + 2.0
    # The sandbox keeps serving (a new child where the old one was killed).
    assert sandbox.render(TEMPLATE, MESSAGES) == '<user>"hi"<assistant>'
