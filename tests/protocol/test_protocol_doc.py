"""docs/protocol.md must contain the current generated tables, so the doc cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

import pytest
from atm_tools import protocol_doc
from atm_wire import messages as m

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


@pytest.mark.parametrize("name", list(protocol_doc.TABLES))
def test_doc_contains_current_table(name: str) -> None:
    assert protocol_doc.block(name) in DOC.read_text(), (
        f"docs/protocol.md: table {name!r} is stale; "
        "run `python -m atm_tools.protocol_doc --write docs/protocol.md`"
    )


def test_doc_mentions_every_command_and_event() -> None:
    text = DOC.read_text()
    for name, *_ in m.COMMANDS:
        assert f"`{name}`" in text
    for name, *_ in m.EVENTS:
        assert f"`{name}`" in text


def test_doc_check_value_and_timer_constants() -> None:
    text = DOC.read_text()
    for needle in ("0x29B1", "25 ms", "5000 ms", "250 ms", "0x7E"):
        assert needle in text
