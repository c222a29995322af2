"""A real browser (headless Chromium) against a real daemon: a page from another site cannot
pull, read or call anything; a page from an origin in MLXCTL_ORIGINS can.

Each page is served by a small HTTP server on its own port (its own origin), runs its
`fetch` calls, and writes what it saw into the DOM, which Chromium dumps when done.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import StartDaemon
from tests.store.hub_server import FakeHub
from tests.store.registry_server import _serve

pytestmark = pytest.mark.slow

REPO = "mlx-test/victim"
BROWSER = next(
    (found for name in ("chromium", "chromium-browser", "google-chrome")
     if (found := shutil.which(name))),
    None,
)  # fmt: skip
# What a hostile page tries: a CSRF pull (a "simple" request: no preflight), a read of the
# model list, and a JSON call (preflighted).
PAGE = """<!doctype html><pre id="out">pending</pre><script>
const daemon = "%(daemon)s";
async function attempt(what, call) {
  try { return await call(); } catch (e) { return "blocked"; }
}
(async () => {
  const out = {};
  out.pull = await attempt("pull", async () => {
    const r = await fetch(daemon + "/api/pull", {method: "POST", mode: "no-cors",
      body: JSON.stringify({model: "%(repo)s", stream: false})});
    return r.type;  // "opaque": the page never sees the answer, only the side effect counts
  });
  out.tags = await attempt("tags", async () => {
    const r = await fetch(daemon + "/api/tags");
    return r.status + " " + r.headers.get("x-request-id") + " " + (await r.text());
  });
  out.show = await attempt("show", async () => {
    const r = await fetch(daemon + "/api/show", {method: "POST",
      headers: {"content-type": "application/json"}, body: JSON.stringify({model: "nope"})});
    return r.status;
  });
  document.getElementById("out").textContent = JSON.stringify(out);
})();
</script>"""


def _page_server(html: str) -> Any:
    body = html.encode()

    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return _serve(handle)


def _visit(url: str, profile: Path) -> dict[str, Any]:
    """Load `url` in headless Chromium, wait for its fetches, return what the page wrote."""
    assert BROWSER is not None
    result = subprocess.run(
        [BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    start = result.stdout.find('<pre id="out">')
    assert start >= 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = result.stdout[start + len('<pre id="out">') : result.stdout.index("</pre>", start)]
    assert text != "pending", "the page's fetches did not finish"
    return dict(json.loads(text.replace("&quot;", '"').replace("&amp;", "&")))


@pytest.fixture
def hub(tiny_models: dict[str, Path]) -> Iterator[FakeHub]:
    hub = FakeHub()
    hub.add_repo(REPO, tiny_models["qwen2"])
    yield hub
    hub.stop()


@pytest.mark.skipif(BROWSER is None, reason="needs a real browser: apt-get install chromium")
def test_pages_of_other_sites_cannot_use_the_daemon_listed_ones_can(
    start_daemon: StartDaemon, hub: FakeHub, tmp_path: Path
) -> None:
    env = {
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_TOKEN": "",
        "MLXCTL_ORIGINS": "http://localhost:*",
    }
    daemon = start_daemon(env)
    server = _page_server(PAGE % {"daemon": daemon.url, "repo": REPO})
    port = server.server_address[1]
    try:
        # A page on another origin (127.0.0.1:<page port> is not listed).
        hostile = _visit(f"http://127.0.0.1:{port}/", tmp_path / "profile-1")
        assert hostile == {"pull": "opaque", "tags": "blocked", "show": "blocked"}, hostile
        assert hub.seen == []  # the pull never reached the hub
        # A page of a listed origin reads answers (CORS), and its JSON call is preflighted.
        trusted = _visit(f"http://localhost:{port}/", tmp_path / "profile-2")
        status, request_id, body = trusted["tags"].split(" ", 2)
        assert status == "200" and json.loads(body) == {"models": []}
        assert request_id != "null"  # exposed to the page
        assert trusted["show"] == 404
    finally:
        server.shutdown()
        server.server_close()
    access = [line for line in daemon.logs() if line.get("event") == "request"]
    refused = [line for line in access if line.get("error") == "forbidden_origin"]
    assert {line["path"] for line in refused} >= {"/api/pull", "/api/tags"}
