"""The web console in a real headless Chromium: a real mosquitto, the real console process, simulated ATMs.

Screenshots go to reports/console/ (look at them: they are the acceptance evidence of issue 5).
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from atm_msg.cmdsign import generate_key, public_hex
from atm_tools.mosquitto import Mosquitto, find_mosquitto, free_port
from playwright.sync_api import Page, expect, sync_playwright

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "reports" / "console"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]  # fmt: skip
HEALTHY = [f"ATM{i:04d}" for i in range(1, 6)]
VICTIM = "ATM0006"
PASSWORD = "operator-password-1"


@dataclass
class Rig:
    url: str
    broker: Mosquitto
    console: subprocess.Popen[bytes]
    healthy: subprocess.Popen[str]
    victim: subprocess.Popen[str]

    def steer(self, line: str) -> None:
        assert self.healthy.stdin is not None
        self.healthy.stdin.write(line + "\n")
        self.healthy.stdin.flush()


def _wait_port(port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def _sim(tmp: Path, port: int, pub: str, atms: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests" / "console" / "sim_atm.py"),
            "--port",
            str(port),
            "--dir",
            str(tmp),
            "--pubkey",
            pub,
            "--telemetry-s",
            "1",
            *atms,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto not installed (apt-get install mosquitto)")
    tmp = tmp_path_factory.mktemp("console")
    broker = Mosquitto(tmp / "broker")
    broker.start()
    signer = generate_key(tmp / "cmd.pem")
    db = tmp / "console.db"
    subprocess.run(
        [sys.executable, "-m", "atm_console", "adduser", "--db", str(db), "--username", "alice",
         "--password-stdin"], input=PASSWORD, text=True, check=True, capture_output=True,
    )  # fmt: skip
    http = free_port()
    console = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "atm_console",
            "serve",
            "--broker-port",
            str(broker.port),
            "--http-port",
            str(http),
            "--db",
            str(db),
            "--command-key",
            str(tmp / "cmd.pem"),
            "--bucket-s",
            "2",
            "--client-id",
            f"console-test-{os.getpid()}",
        ],
    )
    procs: list[subprocess.Popen[str]] = []
    try:
        _wait_port(http)
        pub = public_hex(signer.public)
        procs.append(_sim(tmp / "sim", broker.port, pub, HEALTHY))
        procs.append(_sim(tmp / "victim", broker.port, pub, [VICTIM]))
        yield Rig(f"http://127.0.0.1:{http}", broker, console, procs[0], procs[1])
    finally:
        for p in procs:
            p.kill()
            p.wait()
        console.send_signal(signal.SIGINT)
        try:
            console.wait(10)
        except subprocess.TimeoutExpired:
            console.kill()
        broker.stop()


@pytest.fixture(scope="module")
def page(rig: Rig) -> Iterator[Page]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = browser.new_context(viewport={"width": 1500, "height": 900}, color_scheme="dark")
        pg = ctx.new_page()
        pg.set_default_timeout(15000)
        yield pg
        browser.close()


def test_login_and_healthy_fleet_overview(rig: Rig, page: Page) -> None:
    page.goto(rig.url + "/")
    expect(page).to_have_url(rig.url + "/login")
    page.fill("#username", "alice")
    page.fill("#password", "wrong-password-0")
    page.click("#signin")
    expect(page.locator("#error")).to_contain_text("wrong username or password")
    page.fill("#password", PASSWORD)
    page.click("#signin")
    expect(page).to_have_url(rig.url + "/")
    expect(page.locator("#k-online")).to_have_text("6")
    expect(page.locator("#k-offline")).to_have_text("0")
    expect(page.locator("#atms tbody tr")).to_have_count(6)
    expect(page.locator("#atms .pill.ok")).to_have_count(6)
    expect(page.locator("#k-cash")).to_have_text(f"{6 * 1500 * 180:,}")
    page.wait_for_timeout(2500)  # a few availability buckets for the chart
    page.evaluate(
        "document.getElementById('fleet-avail').src = '/api/fleet/availability.svg?x=' + Date.now()"
    )
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "01-overview-healthy.png"), full_page=True)


def test_atm_goes_offline_when_its_client_is_killed(rig: Rig, page: Page) -> None:
    rig.victim.send_signal(signal.SIGKILL)  # no clean disconnect: the broker publishes the Will
    rig.victim.wait()
    row = page.locator(f"#atms tbody tr[data-atm='{VICTIM}']")
    expect(row.locator(".pill")).to_have_text("offline")
    expect(row.locator("td").nth(2)).to_have_text("offline")  # not its last state in green
    expect(row.locator("td").nth(2)).to_have_class("st-offline")
    row.click()
    expect(page.locator("#d-title")).to_have_text(f"{VICTIM} — offline (last reported: in service)")
    page.click("#d-close")
    expect(page.locator("#k-offline")).to_have_text("1")
    expect(page.locator("#alarms li", has_text=VICTIM)).to_contain_text("comms lost")
    expect(page.locator("#atms tbody tr").first).to_have_attribute("data-atm", VICTIM)  # problems first
    page.screenshot(path=str(SHOTS / "02-atm-offline.png"), full_page=True)


def test_alarm_raised_and_acknowledged(rig: Rig, page: Page) -> None:
    rig.steer("event ATM0002 jam alarm location=transport notes=3")
    rig.steer("cassette ATM0004 2 120")
    jam = page.locator("#alarms li", has_text="dispenser jam")
    expect(jam).to_contain_text("ATM0002")
    expect(jam).to_contain_text("location=transport")
    expect(page.locator("#alarms li", has_text="cassette low")).to_contain_text("ATM0004")
    page.screenshot(path=str(SHOTS / "03-alarm-raised.png"), full_page=True)
    jam.locator("button.ack").click()
    expect(jam).to_have_class("sev-alarm acked")
    expect(jam).to_contain_text("ack alice")
    audit = page.evaluate("fetch('/api/audit').then(r => r.json())")
    assert any(r["action"] == "ack_alarm" and r["operator"] == "alice" for r in audit)
    # without the CSRF header the same request is refused
    status = page.evaluate(
        "fetch('/api/alarms/A0000001/ack', {method:'POST', headers:{'Content-Type':'application/json'},"
        " body:'{}'}).then(r => r.status)"
    )
    assert status == 403
    page.screenshot(path=str(SHOTS / "04-alarm-acknowledged.png"), full_page=True)


def test_commands_are_offered_only_for_what_the_host_obeys(rig: Rig, page: Page) -> None:
    """The fake ATMs answer as the real host does; tests/console/test_real_host.py drives a real one."""
    page.locator("#atms tbody tr[data-atm='ATM0003']").click()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#d-facts")).to_contain_text("fw-1.4.2")  # firmware version from the versions event
    offered = page.eval_on_selector_all("#detail button[data-action]", "bs => bs.map(b => b.dataset.action)")
    assert sorted(offered) == ["in_service", "out_of_service", "rebirth", "status"]
    status = page.evaluate(
        "fetch('/api/atm/ATM0003/command', {method:'POST', headers:{'Content-Type':'application/json',"
        " 'X-CSRF-Token': S.csrf}, body: JSON.stringify({action: 'replenish', args: {}})})"
        ".then(async r => [r.status, (await r.json()).error])"
    )
    assert status[0] >= 400 and "not offered" in status[1], status
    page.screenshot(path=str(SHOTS / "05-commands-offered.png"), full_page=True)
