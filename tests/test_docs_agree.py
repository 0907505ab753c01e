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
