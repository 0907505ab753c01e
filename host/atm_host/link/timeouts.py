"""How long the host waits for each command: acknowledge at once, completion after the mechanics.

Every figure is the longest the operation may take on a healthy device plus a margin, because a
timeout on a money-moving command leaves its outcome unknown until the host re-queries the device.
"""

from __future__ import annotations

from atm_wire.link import RTO_MAX

# An acknowledge is sent at once, but the frame (or its answer) may need retransmissions: allow one
# full backed-off retransmit interval (RTO_MAX, 5 s) plus a second.
ACK_TIMEOUT_S = RTO_MAX / 1000 + 1.0
# The completion frame can need retransmissions too: every completion deadline below is the work's
# own duration plus this allowance (a 93-byte report crosses a line with 1% byte errors intact only
# about one time in three).
RETRANSMIT_ALLOWANCE_S = RTO_MAX / 1000 + 1.0

# How long each command's work takes on the device, in seconds (the deadline adds the allowance).
COMMAND_TIMEOUT_S: dict[str, float] = {
    "hello": 3.0,  # answered from RAM
    "status": 3.0,
    "get_nonce": 5.0,  # the nonce counter is persisted to flash before the nonce is issued
    "denominate": 3.0,  # arithmetic only
    "dispense": 10.0,  # plus DISPENSE_PER_NOTE_S per note, see dispense_timeout()
    "present": 15.0,  # shutter open + notes moved into the presenter
    "retract": 20.0,  # shutter close + transport to the retract bin
    "reject": 30.0,  # stacker to the reject bin
    "count": 180.0,  # counts a whole cassette (up to ~2,000 notes at ~15 notes/s)
    "reset": 60.0,  # homes every motor, may clear the transport into the reject bin
    "open_shutter": 8.0,
    "close_shutter": 8.0,
    "cassette_info": 3.0,
    "replenish": 5.0,  # journals the new counts to flash
    "get_report": 3.0,
    "provision": 5.0,  # writes the key to flash
    "counters": 3.0,
    "set_config": 5.0,  # persisted to flash
}

# A real picker moves 5-10 notes/s; the allowance covers a double-pick divert and a retry per note.
DISPENSE_PER_NOTE_S = 0.5


def dispense_timeout(notes: int) -> float:
    """Completion deadline of a dispense of `notes` notes (40 notes: 36 s)."""
    return COMMAND_TIMEOUT_S["dispense"] + DISPENSE_PER_NOTE_S * max(0, notes) + RETRANSMIT_ALLOWANCE_S


def command_timeout(name: str) -> float:
    """Completion deadline of any other command."""
    return COMMAND_TIMEOUT_S[name] + RETRANSMIT_ALLOWANCE_S
