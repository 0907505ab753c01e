"""The docs a new engineer reads state what the code does: constants, golden frames, samples."""

from __future__ import annotations

import json
import re
from pathlib import Path

from atm_wire.frame import MAX_PAYLOAD

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL_MD = ROOT / "docs" / "protocol.md"
GOLDEN = ROOT / "tests" / "protocol" / "golden_frames.json"


def test_protocol_doc_states_the_real_max_payload() -> None:
    stated = re.findall(r"`MAX_PAYLOAD` = (\d+)", PROTOCOL_MD.read_text())
    assert stated and {int(x) for x in stated} == {MAX_PAYLOAD}


def test_protocol_doc_worked_examples_are_the_golden_frames() -> None:
    text = PROTOCOL_MD.read_text()
    for v in json.loads(GOLDEN.read_text())["frames"]:
        spaced = " ".join(f"{b:02x}" for b in bytes.fromhex(v["frame"]))
        assert f"**{v['name']}**: {v['note']}" in text, v["name"]
        assert spaced in text, f"docs/protocol.md shows another frame for {v['name']}"


def test_doctor_sample_shows_the_firmware_version_the_firmware_reports() -> None:
    found = re.search(
        r"^FW_VERSION = \((\d+), (\d+), (\d+)\)", (ROOT / "firmware" / "app.py").read_text(), re.M
    )
    assert found, "firmware/app.py declares no FW_VERSION"
    version = ".".join(found.groups())
    sample = re.findall(
        r"^OK +mcu firmware +(\S+) \(protocol", (ROOT / "docs" / "deployment.md").read_text(), re.M
    )
    assert sample == [version], (
        f"docs/deployment.md doctor sample shows {sample}, the firmware says {version}"
    )


def test_every_mqtt_client_of_the_product_gets_tcp_nodelay() -> None:
    """The docs say every client sets TCP_NODELAY: true only if every client is made by atm_msg.mqtt."""
    makers: list[str] = []
    for package in ("bank", "host", "console", "protocol"):
        for path in (ROOT / package).rglob("*.py"):
            if re.search(r"\bmqtt\.Client\(|\bClient\(\s*CallbackAPIVersion", path.read_text()):
                makers.append(str(path.relative_to(ROOT)))
    assert makers == ["protocol/atm_msg/mqtt.py"], makers
    text = (ROOT / "protocol" / "atm_msg" / "mqtt.py").read_text()
    assert "on_socket_open = _no_delay" in text and "TCP_NODELAY, 1" in text


def test_the_heap_benchmark_fills_the_firmwares_list_of_finished_transactions() -> None:
    """`./atm bench rp2040` reads the heap with every slot of journal.RECENT_MAX in use."""
    from atm_tools import bench_rp2040

    found = re.search(r"^_RECENT_MAX = const\((\d+)\)", (ROOT / "firmware" / "journal.py").read_text(), re.M)
    assert found and int(found.group(1)) == bench_rp2040.RECENT_MAX
