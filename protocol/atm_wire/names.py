"""Names of the wire protocol's codes for people, and lookups by name: the host's side of atm_wire.

atm_wire.messages re-exports everything here on CPython; the firmware never imports it, so these
strings stay off the chip's heap. Codes and layouts live in atm_wire.messages, declared once.
"""

from atm_wire.messages import COMMANDS, EVENTS

COMPLETION_NAMES = (
    "success",
    "invalidData",
    "unsupportedCommand",
    "sequenceError",
    "busy",
    "hardwareError",
    "noCommandNonce",
    "invalidToken",
    "invalidTokenNonce",
    "invalidTokenHMAC",
    "fraudAttempt",
    "notEnoughNotes",
    "jammed",
    "shutterFailure",
    "notProvisioned",
    "alreadyProvisioned",
    "doorOpen",
    "unknownTransaction",
    "incompleteDispense",
    "timeout",
    "cashUnitError",
)

STATE_NAMES = ("idle", "dispensing", "stacked", "presenting", "presented", "retracting", "fault", "busy")

SHUTTER_NAMES = ("closed", "open", "jammed")

UNIT_NAMES = ("ok", "low", "empty", "missing")

PRESENT_NAMES = ("notPresented", "presented", "unknown")

COMMAND_BY_NAME: "dict[str, tuple[str, int, str, str]]" = {}
for _entry in COMMANDS:
    COMMAND_BY_NAME[_entry[0]] = _entry
EVENT_BY_NAME: "dict[str, tuple[str, int, str]]" = {}
EVENT_BY_CODE: "dict[int, tuple[str, int, str]]" = {}
for _ev in EVENTS:
    EVENT_BY_NAME[_ev[0]] = _ev
    EVENT_BY_CODE[_ev[1]] = _ev


def completion_name(code: int) -> str:
    if 0 <= code < len(COMPLETION_NAMES):
        return COMPLETION_NAMES[code]
    return "code%d" % code
