"""The console's remote commands in a real headless Chromium against a REAL ATM host.

The host is the journey of `./atm demo` (tools/atm_tools/demo.LocalStack): the real firmware on the
simulated board, the bank service, the host's BankLink and Journey, and the console process, all on a
real mosquitto. Every command the console offers goes out signed, the journey obeys it, and the result
comes back through the host's outbox. Screenshots go to reports/console/ (1500 px and 390 px wide).
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from atm_console.commands import ACTIONS
from atm_host.journey.config import JourneyConfig
from atm_host.journey.states import State
from atm_tools.demo import ATM_ID, LocalStack, StackOptions
from atm_tools.mosquitto import find_mosquitto
from playwright.sync_api import Page, expect, sync_playwright

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "reports" / "console"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]  # fmt: skip
# Every element inside the viewport's width and no two visible boxes of the page's blocks overlapping.
LAYOUT_JS = """() => {
  const W = document.documentElement.clientWidth, out = [];
  // the open drawer is an overlay: then only what is inside it is checked
  const root = document.querySelector("#detail:not([hidden])") || document.body;
  const sel = "header, .kpi, .card, table, #detail .cols > *, .list li > *";
  const blocks = [...root.querySelectorAll(sel)].filter((e) => e.offsetParent !== null);
  for (const el of root.querySelectorAll("*")) {
    if (el.offsetParent === null) continue;
    const r = el.getBoundingClientRect();
    if (r.width && (r.left < -1 || r.right > W + 1) && !el.closest(".scroll-x"))
      out.push((el.id || el.tagName) + " outside the width " + Math.round(r.left) + ".."
        + Math.round(r.right));
  }
  for (let i = 0; i < blocks.length; i++) for (let j = i + 1; j < blocks.length; j++) {
    const a = blocks[i].getBoundingClientRect(), b = blocks[j].getBoundingClientRect();
    if (blocks[i].contains(blocks[j]) || blocks[j].contains(blocks[i])) continue;
    const ox = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    const oy = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    const name = (e) => e.id || e.className || e.tagName;
    if (ox > 2 && oy > 2) out.push(name(blocks[i]) + " overlaps " + name(blocks[j]));
  }
  return out.slice(0, 20);
}"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    assert find_mosquitto() is not None, "mosquitto missing: apt-get install mosquitto (./atm setup does it)"
    opts = StackOptions(
        journey=JourneyConfig.model_validate({"timeouts": {"outcome_s": 0.0, "idle_check_s": 0.3}}),
        console=True,
        console_password="operator-password-1",
    )
    with LocalStack(tmp_path_factory.mktemp("real-host"), opts) as s:
        assert s.console_url, "the console did not start"
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert os.access(CHROMIUM, os.X_OK), "chromium missing: apt-get install chromium (./atm setup does it)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _signed_in(browser: Any, stack: LocalStack, width: int, height: int) -> Page:
    ctx = browser.new_context(viewport={"width": width, "height": height}, color_scheme="dark")
    pg: Page = ctx.new_page()
    pg.set_default_timeout(20000)
    pg.goto(stack.console_url)
    pg.fill("#username", "operator")
    pg.fill("#password", stack.console_password)
    pg.click("#signin")
    expect(pg.locator(f"#atms tbody tr[data-atm='{ATM_ID}']")).to_have_count(1)
    return pg


def _command(pg: Page, action: str, label: str) -> None:
    pg.click(f"#detail button[data-action='{action}']")
    item = pg.locator("#d-cmds li", has_text=label).first
    expect(item.locator(".pill")).to_have_text("ok")


def test_every_offered_command_is_obeyed_by_the_real_host(stack: LocalStack, browser: Any) -> None:
    j = stack.journey
    assert j is not None
    j.wait_state({State.IDLE}, 20)
    pg = _signed_in(browser, stack, 1500, 900)
    row = pg.locator(f"#atms tbody tr[data-atm='{ATM_ID}']")
    expect(row.locator(".pill")).to_have_text("online")
    expect(row.locator("td").nth(2)).to_have_text("in service")
    # freshly loaded with 200 notes per cassette: no "cassette low" alarm
    pg.wait_for_timeout(1500)
    assert pg.locator("#alarms li", has_text="cassette").count() == 0
    row.click()
    expect(pg.locator("#d-title")).to_contain_text("in service")
    # the console offers exactly what the host obeys
    offered = pg.eval_on_selector_all("#detail button[data-action]", "bs => bs.map(b => b.dataset.action)")
    assert set(offered) == set(ACTIONS), offered
    assert pg.locator("#f-replenish, #f-limits, [data-action='reset_dispenser']").count() == 0
    # destructive: a confirmation first; dismissed, nothing is sent
    pg.once("dialog", lambda d: d.dismiss())
    pg.click("#detail button[data-action='out_of_service']")
    expect(pg.locator("#d-cmd-msg")).to_have_text("not sent")
    assert pg.locator("#d-cmds li", has_text="out of service").count() == 0
    pg.once("dialog", lambda d: d.accept())
    _command(pg, "out_of_service", "out of service")
    j.wait_state({State.OUT_OF_SERVICE}, 20)
    # the drawer follows the ATM: the host reports an operator's out-of-service as maintenance
    expect(pg.locator("#d-title")).to_contain_text("maintenance")
    expect(row.locator("td").nth(2)).to_have_text("maintenance")
    expect(pg.locator("#k-inservice")).to_have_text("0")  # the header agrees with the row
    expect(pg.locator("#k-online")).to_have_text("1")
    pg.screenshot(path=str(SHOTS / "06-real-host-out-of-service.png"), full_page=True)
    _command(pg, "in_service", "in service")
    j.wait_state({State.IDLE}, 20)
    expect(pg.locator("#d-title")).to_contain_text("in service")
    expect(row.locator("td").nth(2)).to_have_text("in service")
    expect(pg.locator("#k-inservice")).to_have_text("1")
    _command(pg, "status", "status")
    _command(pg, "rebirth", "rebirth")
    pg.screenshot(path=str(SHOTS / "07-real-host-commands.png"), full_page=True)
    audit = pg.evaluate("fetch('/api/audit').then(r => r.json())")
    for action in ACTIONS:
        asked = [r for r in audit if r["action"] == f"command:{action}" and r["result"] == "requested"]
        done = [r for r in audit if r["action"] == f"result:{action}"]
        assert asked and done and done[0]["result"] == "ok", (action, audit[:8])
        assert asked[0]["command_id"] == done[0]["command_id"] and done[0]["operator"] == "operator"
    pg.context.close()


def test_narrow_screen_has_nothing_overlapping(stack: LocalStack, browser: Any) -> None:
    pg = _signed_in(browser, stack, 390, 844)
    pg.wait_for_timeout(800)
    pg.screenshot(path=str(SHOTS / "08-narrow-390.png"), full_page=True)
    bad = pg.evaluate(LAYOUT_JS)
    pg.locator(f"#atms tbody tr[data-atm='{ATM_ID}']").click()
    expect(pg.locator("#d-title")).to_contain_text(ATM_ID)
    pg.wait_for_timeout(500)
    pg.screenshot(path=str(SHOTS / "09-narrow-390-detail.png"), full_page=True)
    bad += pg.evaluate(LAYOUT_JS)
    pg.context.close()
    assert bad == [], bad
