"""The ATM screen in real headless Chromium: a whole withdrawal driven through the page, screenshots kept."""

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from atm_host.journey.states import State
from atm_host.screen.server import ScreenServer
from atm_tools.demo import LocalStack

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SHOTS = Path(__file__).resolve().parents[2] / "reports" / "screen"


@pytest.fixture
def page(stack: LocalStack) -> Iterator[tuple[Any, ScreenServer]]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    assert stack.journey is not None
    screen = ScreenServer(stack.journey, port=0).start()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1280, "height": 800})
        pg.goto(screen.url)
        try:
            yield pg, screen
        finally:
            browser.close()
            screen.stop()


def _state(pg: Any, state: str) -> None:
    pg.wait_for_function(f"document.body.dataset.state === '{state}'", timeout=20000)


def test_full_withdrawal_through_the_screen(stack: LocalStack, page: tuple[Any, ScreenServer]) -> None:
    pg, _ = page
    j = stack.journey
    assert j is not None and stack.board is not None
    SHOTS.mkdir(parents=True, exist_ok=True)
    c = stack.customers[7]
    j.wait_state({State.IDLE}, 10)
    _state(pg, "idle")
    stack.camera.show_phone(stack.token(c))
    time.sleep(0.3)  # the camera guide refreshes 5 times a second
    pg.screenshot(path=str(SHOTS / "01_idle_qr.png"))
    _state(pg, "face")
    assert c.face is not None
    stack.camera.show_frame(c.face)
    _state(pg, "second_check")
    stack.camera.show_nothing()
    for d in c.account_digits[:2]:
        pg.click(f"button[data-key='{d}']")
    pg.wait_for_function("document.getElementById('dots').textContent.startsWith('●●○')")
    pg.screenshot(path=str(SHOTS / "02_second_check.png"))
    for d in c.account_digits[2:]:
        pg.click(f"button[data-key='{d}']")
    pg.click("button[data-key='ok']")
    pg.wait_for_function("document.getElementById('en').textContent.includes('mobile')")
    for d in c.mobile_digits:
        pg.click(f"button[data-key='{d}']")
    pg.click("button[data-key='ok']")
    _state(pg, "amount")
    pg.screenshot(path=str(SHOTS / "03_amount.png"))
    assert "Choose" in pg.inner_text("#en")
    before = stack.board.mech.snapshot()["taken"]
    j.cfg = j.cfg.model_copy(update={"timeouts": j.cfg.timeouts.model_copy(update={"outcome_s": 2.0})})
    n = len(j.records)
    pg.click("button[data-key='preset:500']")
    _state(pg, "present")
    pg.screenshot(path=str(SHOTS / "04_take_cash.png"))
    stack.take_cash()
    _state(pg, "end")
    pg.screenshot(path=str(SHOTS / "05_outcome.png"))
    rec = j.wait_records(n + 1, 20)[n]
    assert rec.outcome == "paid" and rec.amount == 500
    assert stack.board.mech.snapshot()["taken"] == before + 5
    assert "Cash taken" in pg.inner_text("#outcome") and "交易完成" in pg.inner_text("#outcome")
    _state(pg, "idle")
    j.cfg = j.cfg.model_copy(update={"timeouts": j.cfg.timeouts.model_copy(update={"outcome_s": 0.0})})
    seen = pg.evaluate("window.seen")
    order = [s.split(":")[0] for s in seen]
    for a, b in [("idle", "face"), ("face", "second_check"), ("amount", "present"), ("present", "end")]:
        assert order.index(a) < order.index(b), order
    assert "end:paid" in seen
