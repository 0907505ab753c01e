"""The ATM screen in real headless Chromium: a whole withdrawal driven through the page, screenshots kept.

Also, on the page the kiosk shows: every Chinese character of the journey's texts is drawn with a real
glyph (not the missing-glyph box of a machine without a CJK font), and at 800x480 (the Pi's 7" touch
screen) no element spills out of its box or off the screen, in every state the customer can see.
"""

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from atm_host.journey import messages as msg
from atm_host.journey.states import Snapshot, State
from atm_host.screen.page import PAGE
from atm_host.screen.server import ScreenInfo, ScreenServer
from atm_host.vision.frame import Frame
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


INFO = ScreenInfo("ATM0001", "400-000-0000", 10)
PI_SCREEN = {"width": 800, "height": 480}
CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
# Draws each character and the missing-glyph box (U+0378 is unassigned: no font has it) on a canvas in
# the page's own font stack; a character drawn exactly like the box has no glyph on this machine.
TOFU_JS = """(chars) => {
  const font = getComputedStyle(document.body).fontFamily;
  const c = document.createElement("canvas"); c.width = 72; c.height = 72;
  const ctx = c.getContext("2d", {willReadFrequently: true});
  const draw = (ch) => {
    ctx.clearRect(0, 0, 72, 72); ctx.font = "56px " + font; ctx.textBaseline = "top"; ctx.fillText(ch, 4, 4);
    return [ctx.measureText(ch).width, ctx.getImageData(0, 0, 72, 72).data.join(",")];
  };
  const [tw, tofu] = draw("\\u0378");
  return chars.filter((ch) => { const [w, img] = draw(ch); return img === tofu || (w === tw && w < 40); });
}"""
# Every visible element inside its parent's box and the viewport; text not wider or taller than its box.
OVERFLOW_JS = """() => {
  const out = [], W = innerWidth, H = innerHeight;
  for (const el of document.querySelectorAll("body *")) {
    const st = getComputedStyle(el);
    if (st.display === "none" || st.visibility === "hidden" || el.tagName === "SCRIPT") continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
      + (el.dataset.key ? "[" + el.dataset.key + "]" : "");
    if (r.left < -1 || r.top < -1 || r.right > W + 1 || r.bottom > H + 1)
      out.push(name + " off screen " + JSON.stringify([r.left, r.top, r.right, r.bottom].map(Math.round)));
    if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0)
      out.push(name + " text wider than its box " + el.scrollWidth + ">" + el.clientWidth);
    if (el.scrollHeight > el.clientHeight + 1 && el.clientHeight > 0)
      out.push(name + " text taller than its box " + el.scrollHeight + ">" + el.clientHeight);
  }
  return out;
}"""


def _chinese_chars() -> list[str]:
    """Every CJK character the customer can be shown: the journey's message tables and the page itself."""
    texts: list[str] = [PAGE]
    for value in vars(msg).values():
        items = value.values() if isinstance(value, dict) else [value]
        texts += [t.zh for t in items if isinstance(t, msg.Text)]  # pyright: ignore[reportUnknownVariableType]
    return sorted({ch for t in texts for ch in CJK.findall(t)})


class Still:
    """A journey view that shows one snapshot (the layout checks need every state, not a live customer)."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    @property
    def snapshot(self) -> Snapshot:
        return self.snap

    def latest_frame(self) -> Frame | None:
        return None

    def key(self, key: str) -> None:
        pass


def _screens() -> dict[str, Snapshot]:
    """One snapshot of every kind of screen, with the longest texts each can carry."""
    p = msg.prompt
    oos_causes = tuple(c.as_dict() for c in msg.CAUSES.values())[:3]
    long_outcome = max(msg.OUTCOMES.values(), key=lambda t: len(t.en)).as_dict()
    long_guide = msg.guidance(["no_qr", "many_faces"]).as_dict()
    return {
        "out_of_service": Snapshot(
            1,
            State.OUT_OF_SERVICE,
            p("out_of_service").as_dict(),
            causes=tuple(msg.CAUSES),
            causes_text=oos_causes,
        ),
        "idle": Snapshot(2, State.IDLE, p("idle").as_dict(), guidance=long_guide, step=1),
        "challenge": Snapshot(
            3,
            State.CHALLENGE,
            p("challenge").as_dict(),
            guidance=msg.GUIDANCE["turn_right"].as_dict(),
            step=2,
            deadline_s=12.0,
        ),
        "second_check": Snapshot(
            4,
            State.SECOND_CHECK,
            p("second_check_mobile").as_dict(),
            step=3,
            deadline_s=30.0,
            digits_needed=4,
            entered=2,
            keypad="mobile",
        ),
        "amount": Snapshot(
            5,
            State.AMOUNT,
            p("amount").as_dict(),
            step=4,
            deadline_s=30.0,
            keypad="amount",
            presets=(100, 200, 500, 1000),
            max_amount=1000,
            amount=880,
        ),
        "present": Snapshot(6, State.PRESENT, p("present").as_dict(), step=5, deadline_s=30.0, amount=880),
        "end": Snapshot(
            7, State.END, p("end").as_dict(), outcome="suspect", outcome_text=long_outcome, amount=880
        ),
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    assert os.access(CHROMIUM, os.X_OK), "chromium missing: apt-get install -y chromium (./atm setup does it)"
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(stack: LocalStack, browser: Any) -> Iterator[tuple[Any, ScreenServer]]:
    assert stack.journey is not None
    screen = ScreenServer(stack.journey, port=0, info=INFO).start()
    pg = browser.new_page(viewport=PI_SCREEN)
    pg.goto(screen.url)
    try:
        yield pg, screen
    finally:
        pg.close()
        screen.stop()


def _show(browser: Any, snap: Snapshot, viewport: dict[str, int]) -> tuple[Any, ScreenServer]:
    screen = ScreenServer(Still(snap), port=0, info=INFO).start()
    pg = browser.new_page(viewport=viewport)
    pg.goto(screen.url)
    pg.wait_for_function(f"document.body.dataset.state === '{snap.state.value}'", timeout=10000)
    pg.wait_for_function("document.getElementById('atm').textContent.includes('ATM0001')", timeout=10000)
    return pg, screen


def test_every_chinese_character_has_a_glyph(browser: Any) -> None:
    """Fails on a machine without a CJK font (every character a box): ./atm setup installs fonts-noto-cjk."""
    chars = _chinese_chars()
    assert len(chars) > 100  # the tables were found
    pg, screen = _show(browser, _screens()["idle"], PI_SCREEN)
    try:
        missing = pg.evaluate(TOFU_JS, chars)
        assert pg.evaluate(TOFU_JS, ["\u0378"]) == ["\u0378"]  # the check can see a missing glyph
    finally:
        pg.close()
        screen.stop()
    assert missing == [], f"{len(missing)} of {len(chars)} characters have no glyph: {''.join(missing[:40])}"


@pytest.mark.parametrize("name", list(_screens()))
def test_nothing_overflows_on_the_pi_screen(browser: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    snap = _screens()[name]
    pg, screen = _show(browser, snap, PI_SCREEN)
    try:
        pg.screenshot(path=str(SHOTS / f"800x480_{name}.png"))
        bad = pg.evaluate(OVERFLOW_JS)
        footer = pg.inner_text("footer")
        if name == "amount":
            limits = pg.inner_text("#limits")
            assert "1000" in limits and "multiples of ¥10" in limits, limits
        if name == "out_of_service":
            helptext = pg.inner_text("#help")
            assert "400-000-0000" in helptext and "ATM0001" in helptext, helptext
        if snap.keypad:
            assert "Clear" in pg.inner_text("button[data-key='clear']")
    finally:
        pg.close()
        screen.stop()
    assert bad == [], bad
    # the footer: the machine and the helpline, never a state name or a customer's amount
    assert "ATM0001" in footer and "400-000-0000" in footer, footer
    assert snap.state.value not in footer and "880" not in footer, footer


def _shot(pg: Any, name: str) -> None:
    """A screenshot of the live page (800x480), which must have nothing spilling out of its box."""
    pg.screenshot(path=str(SHOTS / f"{name}.png"))
    assert pg.evaluate(OVERFLOW_JS) == [], name


# True once the camera guide has finished loading a frame the page requested after time t0 (ms).
CAM_LOADED_AFTER_JS = """t0 => {
  const img = document.getElementById('cam');
  const t = Number(new URL(img.src || 'about:blank', location.href).searchParams.get('t'));
  return t > t0 && img.complete && img.naturalWidth > 0;
}"""


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
    before = j.latest_frame()
    stack.camera.show_phone(stack.token(c))
    # The camera guide shows the phone (not a sleep): the journey has read the phone's frame, then the
    # page (which refreshes the guide 5 times a second) has loaded an image it asked for after that.
    deadline = time.monotonic() + 10
    while j.latest_frame() is before:
        assert time.monotonic() < deadline, "the journey never read the phone's frame"
        time.sleep(0.01)
    pg.wait_for_function(CAM_LOADED_AFTER_JS, arg=pg.evaluate("Date.now()"), timeout=10000)
    _shot(pg, "01_idle_qr")
    _state(pg, "face")
    assert c.face is not None
    stack.camera.show_frame(c.face)
    _state(pg, "second_check")
    stack.camera.show_nothing()
    for d in c.account_digits[:2]:
        pg.click(f"button[data-key='{d}']")
    pg.wait_for_function("document.getElementById('dots').textContent.startsWith('●●○')")
    _shot(pg, "02_second_check")
    for d in c.account_digits[2:]:
        pg.click(f"button[data-key='{d}']")
    pg.click("button[data-key='ok']")
    pg.wait_for_function("document.getElementById('en').textContent.includes('mobile')")
    for d in c.mobile_digits:
        pg.click(f"button[data-key='{d}']")
    pg.click("button[data-key='ok']")
    _state(pg, "amount")
    _shot(pg, "03_amount")
    assert "Choose" in pg.inner_text("#en")
    before = stack.board.mech.snapshot()["taken"]
    j.cfg = j.cfg.model_copy(update={"timeouts": j.cfg.timeouts.model_copy(update={"outcome_s": 2.0})})
    n = len(j.records)
    pg.click("button[data-key='preset:500']")
    _state(pg, "present")
    _shot(pg, "04_take_cash")
    stack.take_cash()
    _state(pg, "end")
    _shot(pg, "05_outcome")
    rec = j.wait_records(n + 1, 20)[n]
    assert rec.outcome == "paid" and rec.amount == 500
    assert stack.board.mech.snapshot()["taken"] == before + 5
    assert "Cash taken" in pg.inner_text("#outcome") and "交易完成" in pg.inner_text("#outcome")
    _state(pg, "idle")
    footer = pg.inner_text("footer")  # the next customer sees no trace of this one
    assert "500" not in footer and "end" not in footer and "ATM0001" in footer, footer
    j.cfg = j.cfg.model_copy(update={"timeouts": j.cfg.timeouts.model_copy(update={"outcome_s": 0.0})})
    seen = pg.evaluate("window.seen")
    order = [s.split(":")[0] for s in seen]
    for a, b in [("idle", "face"), ("face", "second_check"), ("amount", "present"), ("present", "end")]:
        assert order.index(a) < order.index(b), order
    assert "end:paid" in seen
