"""Decline reason codes the bank answers with and the ATM shows (one list for every branch)."""

from enum import StrEnum


class Reason(StrEnum):
    """Why an authorization was declined; the value is the wire code."""

    MALFORMED = "MALFORMED"  # payload failed schema validation
    STALE_REQUEST = "STALE_REQUEST"  # request older than tokens.request_ttl_s
    UNKNOWN_ATM = "UNKNOWN_ATM"  # no device key provisioned for this ATM
    WRONG_ATM = "WRONG_ATM"  # payload names another ATM or another dispenser than the topic's
    TOKEN_FORGED = "TOKEN_FORGED"  # signature does not verify or unknown key id
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_REPLAYED = "TOKEN_REPLAYED"  # the token's single-use nonce was already spent
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    NOT_ENROLLED = "NOT_ENROLLED"  # no face template for the customer
    FACE_MODEL_MISMATCH = "FACE_MODEL_MISMATCH"  # probe from another model/template version: re-enrol
    LIVENESS_FAILED = "LIVENESS_FAILED"
    FACE_QUALITY_LOW = "FACE_QUALITY_LOW"
    FACE_MISMATCH = "FACE_MISMATCH"
    SECOND_CHECK_FAILED = "SECOND_CHECK_FAILED"  # account/mobile digits wrong
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"  # token fixed another amount
    AMOUNT_INVALID = "AMOUNT_INVALID"  # not a positive multiple of the ATM's denominations
    CANNOT_DISPENSE = "CANNOT_DISPENSE"  # the cassettes cannot make the amount
    LIMIT_PER_WITHDRAWAL = "LIMIT_PER_WITHDRAWAL"
    LIMIT_DAILY = "LIMIT_DAILY"
    LIMIT_ACCOUNT_TOTAL = "LIMIT_ACCOUNT_TOTAL"
    TOO_FREQUENT = "TOO_FREQUENT"  # inside the minimum interval between attempts
    ATTEMPTS_EXCEEDED = "ATTEMPTS_EXCEEDED"  # daily attempt limit reached
    LOCKED_OUT = "LOCKED_OUT"  # escalating lockout after repeated failures


# Short texts the ATM can show; none of them leaks which factor failed beyond what the customer knows.
DISPLAY: dict[Reason, str] = {
    Reason.MALFORMED: "Service error, please try again.",
    Reason.STALE_REQUEST: "The request timed out, please try again.",
    Reason.UNKNOWN_ATM: "This ATM is out of service.",
    Reason.WRONG_ATM: "This ATM is out of service.",
    Reason.TOKEN_FORGED: "This QR code is not valid.",
    Reason.TOKEN_EXPIRED: "This QR code has expired; show a new one.",
    Reason.TOKEN_REPLAYED: "This QR code was already used; show a new one.",
    Reason.UNKNOWN_ACCOUNT: "Account not available for cardless withdrawal.",
    Reason.NOT_ENROLLED: "Please enrol your face at a branch first.",
    Reason.FACE_MODEL_MISMATCH: "Please renew your face enrolment at a branch.",
    Reason.LIVENESS_FAILED: "Identity check failed.",
    Reason.FACE_QUALITY_LOW: "Please face the camera at about 50 cm and try again.",
    Reason.FACE_MISMATCH: "Identity check failed.",
    Reason.SECOND_CHECK_FAILED: "Identity check failed.",
    Reason.AMOUNT_MISMATCH: "The amount differs from the one in your app.",
    Reason.AMOUNT_INVALID: "Please choose an amount this ATM can pay.",
    Reason.CANNOT_DISPENSE: "This ATM cannot pay this amount now.",
    Reason.LIMIT_PER_WITHDRAWAL: "Above the per-withdrawal limit.",
    Reason.LIMIT_DAILY: "Above your daily limit.",
    Reason.LIMIT_ACCOUNT_TOTAL: "Above the account's cardless limit.",
    Reason.TOO_FREQUENT: "Please wait before trying again.",
    Reason.ATTEMPTS_EXCEEDED: "Too many attempts today.",
    Reason.LOCKED_OUT: "Too many failed attempts; try again later.",
}
