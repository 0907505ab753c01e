"""Prints (or refreshes with --write) the generated tables of docs/protocol.md from atm_wire."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from atm_wire import messages as m
from atm_wire import names


def _layout(fmt: str) -> str:
    size = struct.calcsize(fmt)
    return "(none)" if size == 0 else f"`{fmt}` ({size} B)"


def commands_table() -> str:
    rows = ["| command | code | arguments | completion data |", "|---|---|---|---|"]
    for name, code, args, done in m.COMMANDS:
        rows.append(f"| `{name}` | 0x{code:02X} | {_layout(args)} | {_layout(done)} |")
    return "\n".join(rows)


def events_table() -> str:
    rows = ["| event | code | data |", "|---|---|---|"]
    for name, code, fmt in m.EVENTS:
        rows.append(f"| `{name}` | 0x{code:02X} | {_layout(fmt)} |")
    return "\n".join(rows)


def completion_table() -> str:
    rows = ["| code | name |", "|---|---|"]
    for code, name in enumerate(names.COMPLETION_NAMES):
        rows.append(f"| {code} | `{name}` |")
    return "\n".join(rows)


def counters_table() -> str:
    rows = ["| index | counter |", "|---|---|"]
    for i, name in enumerate(m.COUNTER_NAMES):
        rows.append(f"| {i} | `{name}` |")
    return "\n".join(rows)


TABLES = {
    "commands": commands_table,
    "events": events_table,
    "completion-codes": completion_table,
    "counters": counters_table,
}


def block(name: str) -> str:
    """One table with the markers it sits between in docs/protocol.md."""
    return f"<!-- generated:{name} -->\n{TABLES[name]()}\n<!-- /generated:{name} -->"


def refresh(text: str) -> str:
    """`text` with every generated block replaced by the current one."""
    for name in TABLES:
        start, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
        i, j = text.find(start), text.find(end)
        if i < 0 or j < 0:
            raise SystemExit(f"error: no {start} ... {end} block in the document")
        text = text[:i] + block(name) + text[j + len(end) :]
    return text


def main(argv: list[str]) -> int:
    """No argument: print the tables. `--write docs/protocol.md`: refresh them in place."""
    if len(argv) == 2 and argv[0] == "--write":
        path = Path(argv[1])
        path.write_text(refresh(path.read_text()))
        return 0
    for name in TABLES:
        print(block(name))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
