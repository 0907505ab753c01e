"""The message model (XFS4IoT-shaped): commands, acknowledge, completion, events and their layouts.

Every payload starts with a one-byte message code and a little-endian u16 request id:

    command     [code 0x01..0x3F][req_id][args...]              host -> device
    acknowledge [0x40][req_id][cmd code][result]                device -> host, at once
    completion  [0x41][req_id][cmd code][completion code][data] device -> host, when done
    event       [code 0x80..0xBF][req_id or 0][data...]         device -> host

Field layouts are `struct` formats (little-endian). Names, codes and layouts are declared once, here,
and looked up by name on the host and by code in the firmware.
"""

N_CASSETTES = 4
ID_LEN = 8  # device id: the RP2040 flash unique id
NONCE_LEN = 16
TXID_LEN = 16
MAC_LEN = 32
KEY_LEN = 32
UNKNOWN_COUNT = 0xFFFF  # "?" in XFS4IoT present-status tokens: the device cannot know this count

HDR = "<BH"
HDR_SIZE = 3
ACK_FMT = "<BHBB"
ACK_SIZE = 5
COMPLETION_FMT = "<BHBB"
COMPLETION_SIZE = 5

MSG_ACKNOWLEDGE = 0x40
MSG_COMPLETION = 0x41

# ----- completion codes (also the acknowledge result; 0 = accepted) ---------------------------------
SUCCESS = 0
INVALID_DATA = 1  # wrong length or field out of range
UNSUPPORTED = 2  # unknown command code
SEQUENCE_ERROR = 3  # not allowed in the device's current state
BUSY = 4  # another command is running
HARDWARE_ERROR = 5
NO_COMMAND_NONCE = 6  # no nonce outstanding (never issued, used, or expired)
INVALID_TOKEN = 7  # token malformed or for another device
INVALID_TOKEN_NONCE = 8  # token names a nonce other than the outstanding one
INVALID_TOKEN_HMAC = 9  # MAC does not verify
FRAUD_ATTEMPT = 10  # repeated invalid tokens: the device locks authorised commands for a while
NOT_ENOUGH_NOTES = 11
JAMMED = 12
SHUTTER_FAILURE = 13
NOT_PROVISIONED = 14
ALREADY_PROVISIONED = 15
DOOR_OPEN = 16
UNKNOWN_TRANSACTION = 17
INCOMPLETE_DISPENSE = 18
TIMEOUT = 19
CASH_UNIT_ERROR = 20  # a cassette is missing or empty


# ----- device state (STATUS) ------------------------------------------------------------------------
STATE_IDLE = 0
STATE_DISPENSING = 1
STATE_STACKED = 2  # notes counted into the stacker, shutter closed, waiting for PRESENT
STATE_PRESENTING = 3
STATE_PRESENTED = 4  # notes in the shutter, waiting for the customer
STATE_RETRACTING = 5
STATE_FAULT = 6
STATE_BUSY = 7  # reset, count, reject: a maintenance motion

SHUTTER_CLOSED = 0
SHUTTER_OPEN = 1
SHUTTER_JAMMED = 2

STATUS_FLAG_PROVISIONED = 0x01
STATUS_FLAG_NONCE = 0x02  # a command nonce is outstanding
STATUS_FLAG_LOCKED = 0x04  # fraud lock-out active
STATUS_FLAG_TAMPER = 0x08

# Cassette fill status (XFS4IoT unit fill levels, reduced).
UNIT_OK = 0
UNIT_LOW = 1
UNIT_EMPTY = 2
UNIT_MISSING = 3

# Present status in the signed report (XFS4IoT GetPresentStatus).
PRESENT_NOT_PRESENTED = 0
PRESENT_PRESENTED = 1
PRESENT_UNKNOWN = 2

REPORT_FLAG_FINAL = 0x01  # the transaction is over: no note of it can move any more
REPORT_FLAG_TAKEN = 0x02  # the presenter sensor saw the notes removed
REPORT_FLAG_RECOVERED = 0x04  # reconciled after a power loss or watchdog reset
REPORT_FLAG_DUPLICATE = 0x08  # DISPENSE repeated for a finished transaction: nothing moved

CAP_E2E_TOKEN = 0x01
CAP_SHUTTER = 0x02
CAP_RETRACT = 0x04
CAP_DOUBLE_PICK_DETECT = 0x08
CAP_POWER_SAFE_JOURNAL = 0x10

BOOT_POWER_ON = 0
BOOT_WATCHDOG = 1
BOOT_SOFT = 2

JAM_TRANSPORT = 0xFF
JAM_SHUTTER = 0xFE
JAM_PRESENTER = 0xFD

# ----- layouts --------------------------------------------------------------------------------------
DISPENSE_TOKEN_FMT = "<8s16s16s4H32s"  # device id, nonce, txid, notes per cassette, HMAC-SHA256
REPLENISH_TOKEN_FMT = "<8s16s4H4H32s"  # device id, nonce, denominations, counts, HMAC-SHA256
REPORT_FMT = "<8s16s16s4HHHHBB32s"  # id, txid, nonce, stacked[4], presented, retracted, rejected,
# present status, flags, HMAC-SHA256
CASSETTE_INFO_FMT = "<4H4H4BHH"  # denominations, counts, unit status, reject bin, retract bin
MAINT_TOKEN_FMT = "<8s16s32s"  # device id, nonce, HMAC-SHA256 (auth.sign_maint); after the own arguments
MAINT_TOKEN_LEN = 56

# Maintenance commands and their own arguments: on the wire each is followed by a maintenance token
# whose MAC covers the command code and these argument bytes (docs/threat-model.md, "Authorisation").
MAINT_COMMANDS = (
    ("reject", "<"),
    ("count", "<B"),
    ("open_shutter", "<"),
)

COUNTER_NAMES = (
    "frames_rx",
    "frames_tx",
    "crc_errors",
    "bytes_dropped",
    "retransmits",
    "unknown_commands",
    "malformed_commands",
    "invalid_tokens",
    "fraud_attempts",
    "dispenses",
    "notes_dispensed",
    "double_picks",
    "jams",
    "retracts",
    "power_recoveries",
    "watchdog_resets",
    "heap_peak",  # bytes: the most the firmware's heap has held since boot (sampled in the main loop)
    "heap_free",  # bytes free after the last collection
    "maint_commands",  # maintenance commands run against a valid maintenance token
)
COUNTERS_FMT = "<19I"

# name, code, args format, completion data format
COMMANDS = (
    ("hello", 0x01, "<B", "<BBBB8sHIBBIH"),  # ... retract timeout ms, presenter capacity (notes)
    ("status", 0x02, "<", "<BBBBBHHI"),
    ("get_nonce", 0x03, "<", "<16sI"),
    ("denominate", 0x04, "<4H", "<I"),
    ("dispense", 0x05, DISPENSE_TOKEN_FMT, "<16s4H4HB"),
    ("present", 0x06, "<16s", "<H"),
    ("retract", 0x07, "<16s", "<H"),
    ("reject", 0x08, "<8s16s32s", "<H"),
    ("count", 0x09, "<B8s16s32s", "<H"),
    ("reset", 0x0A, "<", "<H"),
    ("open_shutter", 0x0B, "<8s16s32s", "<"),
    ("close_shutter", 0x0C, "<", "<"),
    ("cassette_info", 0x0D, "<", CASSETTE_INFO_FMT),
    ("replenish", 0x0E, REPLENISH_TOKEN_FMT, CASSETTE_INFO_FMT),
    ("get_report", 0x0F, "<16s", REPORT_FMT),
    ("provision", 0x10, "<32s", "<"),
    ("counters", 0x11, "<", COUNTERS_FMT),
    ("set_config", 0x12, "<I", "<"),
)

# name, code, data format
EVENTS = (
    ("boot", 0x80, "<BIB"),  # reset cause, boot count, 1 if a transaction was reconciled
    ("items_presented", 0x81, "<16sH"),
    ("items_taken", 0x82, "<16sH"),
    ("items_retracted", 0x83, "<16sH"),  # retracted after the present timeout
    ("incomplete_dispense", 0x84, "<16s4H"),  # notes stacked per cassette when it stopped
    ("cassette_threshold", 0x85, "<BBH"),  # cassette, unit status, count
    ("jam", 0x86, "<BB"),  # location (cassette index or JAM_*), completion code
    ("double_pick", 0x87, "<BB"),  # cassette, notes diverted to the reject bin
    ("tamper", 0x88, "<BB"),  # door open, tamper switch
    ("power_recovery", 0x89, "<16sB"),  # reconciled transaction, its present status
)

COMMAND_BY_CODE: "dict[int, tuple[str, int, str, str]]" = {}
for _entry in COMMANDS:
    COMMAND_BY_CODE[_entry[1]] = _entry

# Names for people (logs, the console, docs) and lookups by name live in atm_wire.names, the host's
# side only, so their strings never take the chip's heap.
