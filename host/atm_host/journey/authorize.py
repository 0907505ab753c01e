"""AUTHORIZE: ask the bank, and burn the MCU nonce when it does not answer."""

import os

from atm_msg.schemas import AuthRequest, AuthResponse, Cassette

from atm_host.banklink.errors import BankLinkError, BankTimeoutError
from atm_host.link.errors import LinkError
from atm_host.link.results import CassetteInfo

from .core import JourneyCore, log
from .records import Ctx
from .states import State


class AuthorizeMixin(JourneyCore):
    """Builds the authorization request and handles an unanswered one."""

    def _authorize(self, ctx: Ctx, nonce: bytes) -> AuthResponse | None:
        assert ctx.probe is not None
        info = self._cassettes
        self._enter(State.AUTHORIZE)
        req = AuthRequest(
            request_id=os.urandom(16).hex(),
            atm_id=self._atm_id(),
            device_id=self.dispenser.info.device_id.hex(),
            command_nonce=nonce.hex(),
            qr_token=ctx.qr_text,
            amount_yuan=ctx.amount,
            face=ctx.probe,
            account_digits=ctx.account_digits,
            mobile_digits=ctx.mobile_digits,
            cassettes=list(self.bank.cassettes) if info is None else self._cassette_list(info),
            max_notes=self._max_notes(),
            ts_ms=int(self.wall() * 1000),
        )
        try:
            return self.bank.authorize(req, timeout_s=self.cfg.timeouts.authorize_s)
        except (BankTimeoutError, BankLinkError) as exc:
            log.warning("authorization %s unanswered: %s", req.request_id, exc)
            self.bank.send_event("auth_timeout", "warning", {"request_id": req.request_id})
            try:  # burn the nonce: a late approval's token can then never be dispensed
                self.dispenser.get_nonce()
            except LinkError:
                pass
            # The bank is told (through the outbox): it closes the request, or parks its hold as suspect.
            self.bank.send_abandon(
                request_id=req.request_id, txid=None, reason="auth_timeout", detail=str(exc)
            )
            return None

    @staticmethod
    def _cassette_list(info: CassetteInfo) -> list[Cassette]:
        pairs = zip(info.denominations, info.counts, strict=True)
        return [Cassette(denomination=d, count=c) for d, c in pairs]
