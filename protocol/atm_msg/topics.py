"""The MQTT topic tree (docs/mqtt.md), declared once for the bank and the ATM host."""

ROOT = "atm/v1"
SHARE_GROUP = "bank"

FLEET_CONFIG = f"{ROOT}/fleet/config"
CONSOLE_ALARM = f"{ROOT}/console/alarm"
BANK_STATE = f"{ROOT}/bank/state"


def birth(atm_id: str) -> str:
    return f"{ROOT}/{atm_id}/birth"


def death(atm_id: str) -> str:
    return f"{ROOT}/{atm_id}/death"


def telemetry(atm_id: str) -> str:
    return f"{ROOT}/{atm_id}/telemetry"


def event(atm_id: str) -> str:
    return f"{ROOT}/{atm_id}/event"


def auth_request(atm_id: str) -> str:
    return f"{ROOT}/{atm_id}/auth/req"


def auth_response(atm_id: str) -> str:
    return f"{ROOT}/{atm_id}/auth/res"


def txn_report(atm_id: str) -> str:
    return f"{ROOT}/{atm_id}/txn/report"


def txn_abandon(atm_id: str) -> str:
    return f"{ROOT}/{atm_id}/txn/abandon"


def txn_result(atm_id: str) -> str:
    return f"{ROOT}/{atm_id}/txn/result"


def command(atm_id: str) -> str:
    return f"{ROOT}/{atm_id}/cmd"


def command_result(atm_id: str) -> str:
    return f"{ROOT}/{atm_id}/cmd/result"


def maint_request(atm_id: str) -> str:
    return f"{ROOT}/{atm_id}/maint/req"


def maint_response(atm_id: str) -> str:
    return f"{ROOT}/{atm_id}/maint/res"


def atm_config(atm_id: str) -> str:
    return f"{ROOT}/{atm_id}/config"


def shared(filter_: str, group: str = SHARE_GROUP) -> str:
    """A shared subscription: the broker gives each message to one worker of the group."""
    return f"$share/{group}/{filter_}"


def atm_of(topic: str) -> str | None:
    """The ATM id of a per-ATM topic, or None when the topic is not one."""
    parts = topic.split("/")
    if len(parts) < 4 or f"{parts[0]}/{parts[1]}" != ROOT or parts[2] in ("fleet", "console", "bank"):
        return None
    return parts[2]
