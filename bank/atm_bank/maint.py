"""Maintenance tokens: an operator's signed console command, checked, audited, signed with the device key."""

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from atm_msg import cmdsign, topics
from atm_msg.schemas import Command, MaintRequest, MaintResponse
from atm_wire.auth import sign_maint  # pyright: ignore[reportUnknownVariableType]
from atm_wire.messages import MAINT_COMMANDS
from atm_wire.names import COMMAND_BY_NAME
from pydantic import ValidationError

from .db import Cursor
from .registry import load_atm

log = logging.getLogger("atm_bank.maint")

_ARG_FORMATS: dict[str, str] = dict(MAINT_COMMANDS)
Clock = Callable[[], float]


@dataclass(frozen=True)
class _Verdict:
    """What the pure checks (signature, command, expiry) found, before the transaction."""

    command_id: str
    op: str
    args: bytes
    refused: str  # "" when the operator's command holds


class MaintSigner:
    """Turns a console-signed `maint` command, relayed by the ATM it names, into one maintenance token.

    Checks: the operator's Ed25519 signature (a key of `operator_keys`) over exactly this payload for
    exactly this ATM's command topic; the command is `maint` with a known op and argument bytes of the
    op's size; not expired; the ATM is provisioned and the device id is its MCU's; the command_id has
    never been granted (a command yields one token, once). Every request, granted or refused, is
    written to maint_audit; a repeated request_id gets the stored answer.
    """

    def __init__(self, operator_keys: list[str], clock: Clock = time.time) -> None:
        self.keys = cmdsign.keys_from_hex(operator_keys)
        self.clock = clock

    @staticmethod
    def locks_for(topic_atm: str) -> list[str]:
        return [f"atm:{topic_atm}"]

    def decider(self, req: MaintRequest, topic_atm: str) -> Callable[[Cursor], MaintResponse]:
        """The transaction body; the signature is checked now, outside the lock."""
        verdict = self._check(req, topic_atm)

        def fn(cur: Cursor) -> MaintResponse:
            now_ms = int(self.clock() * 1000)
            row = cur.one(
                "SELECT response FROM maint_audit WHERE request_id=? AND atm_id=?",
                (req.request_id, topic_atm),
            )
            if row is not None:
                return MaintResponse.model_validate_json(str(row[0]))
            refused = verdict.refused or self._refusal_in_db(cur, req, topic_atm, verdict)
            if refused:
                resp = MaintResponse(request_id=req.request_id, ok=False, reason=refused)
                log.warning("maint: refused %s for %s (%s)", verdict.op or "?", topic_atm, refused)
            else:
                atm = load_atm(cur, topic_atm)
                assert atm is not None  # checked in _refusal_in_db, same transaction
                code = COMMAND_BY_NAME[verdict.op][1]
                nonce = bytes.fromhex(req.command_nonce)
                token: bytes = sign_maint(atm.key, atm.device_id, nonce, code, verdict.args)
                resp = MaintResponse(request_id=req.request_id, ok=True, token=token.hex())
                log.warning(
                    "maint: %s granted for %s by %s (%s)", verdict.op, topic_atm, req.kid, verdict.command_id
                )
            cur.w(
                "INSERT INTO maint_audit (request_id, command_id, atm_id, op, args, nonce, kid, granted, "
                "reason, response, at_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    req.request_id,
                    verdict.command_id,
                    topic_atm,
                    verdict.op,
                    verdict.args.hex(),
                    req.command_nonce,
                    req.kid[:64],
                    int(resp.ok),
                    resp.reason,
                    resp.model_dump_json(),
                    now_ms,
                ),
            )
            return resp

        return fn

    def _check(self, req: MaintRequest, topic_atm: str) -> _Verdict:
        def no(why: str, command_id: str = "", op: str = "", args: bytes = b"") -> _Verdict:
            return _Verdict(command_id, op, args, why)

        if req.atm_id != topic_atm:
            return no("request from another ATM")
        props = [("sig-alg", req.sig_alg), ("kid", req.kid), ("sig", req.sig)]
        payload = req.operator_command.encode()
        if not cmdsign.verify(topics.command(topic_atm), payload, props, self.keys):
            return no("operator signature missing or wrong (or for another ATM)")
        try:
            cmd = Command.model_validate_json(payload)
        except ValidationError:
            return no("operator command malformed")
        op, args_hex = cmd.args.get("op"), cmd.args.get("args", "")
        if cmd.name != "maint" or not isinstance(op, str) or op not in _ARG_FORMATS:
            return no("not a maintenance command", cmd.command_id)
        try:
            args = bytes.fromhex(args_hex) if isinstance(args_hex, str) else b"?"
        except ValueError:
            args = b"?"
        if len(args) != struct.calcsize(_ARG_FORMATS[op]) or args == b"?":
            return no(f"arguments of {op} malformed", cmd.command_id, op)
        if cmd.expires_ms < int(self.clock() * 1000):
            return no("operator command expired", cmd.command_id, op, args)
        return _Verdict(cmd.command_id, op, args, "")

    @staticmethod
    def _refusal_in_db(cur: Cursor, req: MaintRequest, topic_atm: str, verdict: _Verdict) -> str:
        atm = load_atm(cur, topic_atm)
        if atm is None:
            return "unknown ATM"
        if req.device_id != atm.device_id.hex():
            return "device id is not this ATM's dispenser"
        used = cur.one("SELECT 1 FROM maint_audit WHERE command_id=? AND granted=1", (verdict.command_id,))
        if used is not None:
            return "operator command already used"
        return ""
