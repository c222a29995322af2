"""The dashboard in a real headless Chromium (Debian's, driven by its chromedriver through
Selenium) against a real daemon with real workers on a tiny factory model.

One walk through every page, as a user would: the overview shows the budget and the
loaded model; load and unload from the Models page change `ps`; a pull shows its
progress, survives a reload and completes; the playground streams an answer; a slot
load shows on the Slots page; the request tail lists the chat. A second daemon with a
key asks for it. Screenshots of each page go to $MLXCTL_SCREENSHOTS (docs/dashboard/
when refreshed: `MLXCTL_SCREENSHOTS=docs/dashboard pytest tests/dashboard/test_browser.py`),
else to the test's temp dir.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlxctl.library.inventory import register_path
from mlxctl.registry import open_registry
from tests.api.conftest import Daemon, StartDaemon, real_worker_command
from tests.dashboard.conftest import REPO, hub_env
from tests.store.hub_server import FakeHub

pytestmark = pytest.mark.slow

BROWSER = next(
    (found for name in ("chromium", "chromium-browser", "google-chrome")
     if (found := shutil.which(name))),
    None,
)  # fmt: skip
DRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # pragma: no cover - the dev extra installs it
    webdriver = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BROWSER is None or DRIVER is None or webdriver is None,
        reason="needs a real browser and its driver: apt-get install chromium chromium-driver "
        "(scripts/test.sh installs them as root) and selenium (the dev extra)",
    ),
]
MODEL = "tiny"
# Long enough that the answer cannot arrive in one read, even from a fast tiny model.
ANSWER_TOKENS = 200


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[WebDriver, str], None]:
    folder = Path(os.environ.get("MLXCTL_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(driver: WebDriver, name: str) -> None:
        assert driver.save_screenshot(str(folder / f"{name}.png"))

    return shoot


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(BROWSER)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--window-size=1360,900",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(arg)  # fmt: skip
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, check: Callable[[WebDriver], Any], timeout: float = 60) -> Any:
    try:
        return WebDriverWait(
            driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
        ).until(check)
    except TimeoutException:
        raise AssertionError(
            f"timed out; page text:\n{driver.find_element(By.TAG_NAME, 'body').text}"
        ) from None


def text(driver: WebDriver, css: str) -> str:
    """The element's text, read in one step (live updates redraw elements under Selenium)."""
    found = driver.execute_script(
        "const el = document.querySelector(arguments[0]); return el && el.innerText;", css
    )
    if found is None:
        raise NoSuchElementException(css)
    return str(found)


def go(driver: WebDriver, page: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'nav a[data-page="{page}"]').click()
    wait(driver, lambda d: d.find_element(By.ID, f"page-{page}").is_displayed())


def model_row(driver: WebDriver, slug: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'#models tr[data-model="{slug}"]')


@pytest.fixture
def daemon(
    start_daemon: StartDaemon,
    tiny_models: dict[str, Path],
    slot_env: dict[str, str],
    hub: FakeHub,
) -> Daemon:
    registry = open_registry()
    try:
        register_path(registry, tiny_models["qwen2"], slug=MODEL)
    finally:
        registry.db.close()
    return start_daemon(
        {**slot_env, **hub_env(hub), "MLXCTL_WORKER_COMMAND": real_worker_command()}
    )


def test_every_page_in_a_real_browser(
    daemon: Daemon,
    browser: WebDriver,
    hub: FakeHub,
    tiny_models: dict[str, Path],
    shots: Callable[[WebDriver, str], None],
) -> None:
    browser.get(daemon.url + "/")  # a browser at the root lands on the dashboard
    assert browser.current_url == daemon.url + "/ui/"
    wait(browser, lambda d: "live" in text(d, "#live"))

    # Models: load from the page, and `ps` has it; the overview shows it in the budget.
    go(browser, "models")
    wait(browser, lambda d: model_row(d, MODEL))
    model_row(browser, MODEL).find_element(By.XPATH, ".//button[text()='Load']").click()
    wait(
        browser,
        lambda d: model_row(d, MODEL).find_element(By.CSS_SELECTOR, ".model-state").text == "ready",
    )
    assert daemon.ps()[MODEL]["state"] == "ready"
    model_row(browser, MODEL).click()
    wait(browser, lambda d: "Capabilities" in text(d, "#model-detail"))
    shots(browser, "models")
    go(browser, "overview")
    wait(browser, lambda d: MODEL in text(d, "#loaded tbody"))
    assert "ready" in text(browser, "#loaded tbody")
    assert "free" in text(browser, "#budget-text") and MODEL in text(browser, "#budget-legend")
    assert browser.find_elements(By.CSS_SELECTOR, "#budget-bar span")

    # Playground: the answer arrives in pieces (counted in the page as the text changes).
    # The whole message is counted: a random model may open a reasoning block and leave the
    # answer proper only its last few tokens.
    go(browser, "playground")
    Select(browser.find_element(By.ID, "chat-model")).select_by_value(MODEL)
    browser.find_element(By.ID, "chat-system").send_keys("You are terse.")
    browser.find_element(By.ID, "chat-prompt").send_keys("Tell me about lighthouses.")
    # Random weights end answers at random: the end-of-sequence tokens are ruled out, so the
    # answer runs to max_tokens (through the page's "More parameters" JSON).
    eos = json.loads((tiny_models["qwen2"] / "generation_config.json").read_text())["eos_token_id"]
    browser.find_element(By.CSS_SELECTOR, "#chat-form details summary").click()
    no_eos = {"logit_bias": {str(token): -100 for token in eos}}
    browser.find_element(By.ID, "chat-extra").send_keys(json.dumps(no_eos))
    max_tokens = browser.find_element(By.ID, "chat-max-tokens")
    max_tokens.clear()
    max_tokens.send_keys(str(ANSWER_TOKENS))
    browser.execute_script(
        "window.pieces = [];"
        "new MutationObserver(() => { const t = document.querySelector('.msg.assistant');"
        " if (t && t.textContent) window.pieces.push(t.textContent.length); })"
        ".observe(document.getElementById('panes'),"
        " {subtree: true, childList: true, characterData: true});"
    )
    browser.find_element(By.ID, "chat-send").click()
    wait(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, ".msg.assistant .stats").get_attribute(
            "data-done"
        ),
    )
    pieces = browser.execute_script("return window.pieces")
    answer = text(browser, "#panes")
    # In steps; not strictly growing: a split UTF-8 character is shown as U+FFFD until whole.
    assert len(set(pieces)) >= 3 and pieces[-1] == max(pieces), (pieces, answer)
    stats = text(browser, ".msg.assistant .stats")
    assert stats.startswith("TTFT") and f" {ANSWER_TOKENS} tokens · " in stats, stats
    assert float(stats.split(" tok/s")[0].rsplit(" ", 1)[-1]) > 0, stats
    shots(browser, "playground")

    # Unload from the Models page: gone from `ps`.
    go(browser, "models")
    model_row(browser, MODEL).find_element(By.XPATH, ".//button[text()='Unload']").click()
    wait(browser, lambda d: MODEL not in daemon.ps())
    wait(
        browser,
        lambda d: model_row(d, MODEL).find_element(By.CSS_SELECTOR, ".model-state").text == "–",
    )

    # Pull: progress while it runs, kept across a reload, then done and listed.
    hub.bytes_per_second = 1 << 20
    browser.find_element(By.ID, "pull-ref").send_keys(REPO)
    browser.find_element(By.CSS_SELECTOR, "#pull-form button").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#jobs .job"))
    running = text(browser, "#jobs .job .state")
    browser.refresh()
    wait(browser, lambda d: REPO in text(d, "#jobs"))
    wait(browser, lambda d: "done" in text(d, "#jobs .job .state"))
    assert browser.find_element(By.CSS_SELECTOR, "#jobs progress").get_attribute("value") == "100"
    assert running.endswith("%") or running == "running", running  # seen before it was done
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#models tr[data-model]")) == 2)
    shots(browser, "pull")

    # Slots: load the model on the first slot from its row; the daemon's table agrees.
    go(browser, "slots")
    alpha = '#slots tr[data-slot="alpha"]'
    row = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, alpha))
    Select(row.find_element(By.TAG_NAME, "select")).select_by_value(MODEL)
    # Found again: live updates may redraw the row (they keep what was picked).
    browser.find_element(By.CSS_SELECTOR, alpha).find_element(
        By.XPATH, ".//button[text()='Load']"
    ).click()
    wait(browser, lambda d: text(d, f"{alpha} .live-model") == MODEL)
    assert text(browser, f"{alpha} .desired") == MODEL
    wait(browser, lambda d: text(d, f"{alpha} .health") == "ok")
    slots = daemon.client().get("/api/admin/slots").json()["slots"]
    assert slots[0]["alias"] == "alpha" and slots[0]["live"]["model"] == MODEL
    shots(browser, "slots")

    # Requests: the chat is in the tail; a click shows its line.
    go(browser, "requests")
    rows = "#requests tbody tr"

    def chat_line_shown(d: WebDriver) -> bool:
        # Found and clicked in one try: a live update may redraw the table in between.
        found = d.find_elements(By.CSS_SELECTOR, rows)
        chat = [r for r in found if "/v1/chat/completions" in r.text]
        if chat:
            chat[0].click()
        return bool(chat) and f'"completion_tokens": {ANSWER_TOKENS}' in text(d, "#req-detail")

    wait(browser, chat_line_shown)
    shots(browser, "requests")
    go(browser, "overview")
    wait(browser, lambda d: "slot alpha" in text(d, "#loaded tbody"))
    shots(browser, "overview")
    browser.set_window_size(400, 860)  # a phone: tables fold into cards, nothing overflows
    go(browser, "models")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400, width
    shots(browser, "phone")


def test_with_a_key_the_page_asks_for_it_once(
    start_daemon: StartDaemon, browser: WebDriver, shots: Callable[[WebDriver, str], None]
) -> None:
    daemon = start_daemon({"MLXCTL_API_KEY": "browser-key"})
    browser.get(daemon.url + "/ui/")
    wait(browser, lambda d: d.find_element(By.ID, "login").is_displayed())
    assert not browser.find_element(By.ID, "page-overview").is_displayed()
    shots(browser, "login")
    browser.find_element(By.ID, "login-key").send_keys("not-it")
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(browser, lambda d: "Wrong API key" in text(d, "#login-error"))
    key = browser.find_element(By.ID, "login-key")
    key.clear()
    key.send_keys("browser-key")
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(browser, lambda d: "live" in text(d, "#live"))
    assert browser.find_element(By.ID, "page-overview").is_displayed()
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: no script reads it
    browser.refresh()  # asked once: the cookie carries the session
    wait(browser, lambda d: "live" in text(d, "#live"))
    assert not browser.find_element(By.ID, "login").is_displayed()
