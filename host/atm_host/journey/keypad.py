"""SECOND_CHECK and AMOUNT: the digits and the amount typed on the keypad, checked locally."""

from atm_msg.denominate import denominate
from atm_msg.errors import MsgError
from atm_msg.schemas import FleetConfig

from atm_host.banklink.errors import OfflineCheckError
from atm_host.banklink.offline import check_amount

from . import messages as msg
from .core import JourneyCore
from .errors import Refused
from .records import Ctx
from .states import State


class KeypadMixin(JourneyCore):
    """Asks for the second-check digits and an amount the ATM can pay."""

    def _digits(self, fld: str, n: int, prompt: msg.Text) -> str:
        buf = ""
        self._update(keypad=fld, digits_needed=n, entered=0, prompt=prompt.as_dict(), guidance=None)
        while True:
            k = self._next_key()
            if k.isdigit() and len(buf) < n:
                buf += k
            elif k == "back":
                buf = buf[:-1]
            elif k == "clear":
                buf = ""
            elif k == "ok" and len(buf) == n:
                return buf
            elif k == "ok":
                self._update(guidance=msg.Text(f"请输入{n}位数字", f"Please type {n} digits").as_dict())
                continue
            self._update(entered=len(buf))

    def _second_check(self, ctx: Ctx, fleet: FleetConfig) -> None:
        n = fleet.second_check_digits
        self._enter(State.SECOND_CHECK)
        ctx.account_digits = self._digits("account", n, msg.prompt("second_check", n))
        ctx.mobile_digits = self._digits("mobile", n, msg.prompt("second_check_mobile", n))

    def _amount_ok(self, amount: int, ctx: Ctx, fleet: FleetConfig) -> str:
        """'' when the amount can be asked for, else the outcome code that explains why not."""
        assert ctx.token is not None
        info = self._cassettes
        denoms = list(info.denominations) if info else fleet.denominations
        try:
            check_amount(amount, ctx.token, fleet, denoms)
        except OfflineCheckError as exc:
            return "limit" if exc.reason.startswith("LIMIT") else "amount_invalid"
        if info is not None:
            try:
                denominate(amount, denoms, list(info.counts), self._max_notes())
            except MsgError:
                return "amount_invalid"
        return ""

    def _amount(self, ctx: Ctx, fleet: FleetConfig) -> None:
        assert ctx.token is not None
        limit = fleet.limits.per_withdrawal_yuan
        if ctx.token.amount_yuan:  # the phone fixed the amount: nothing to choose
            problem = self._amount_ok(ctx.token.amount_yuan, ctx, fleet)
            if problem:
                raise Refused(problem, f"{ctx.token.amount_yuan} yuan")
            ctx.amount = ctx.token.amount_yuan
            return
        presets = tuple(p for p in self.cfg.presets_yuan if not self._amount_ok(p, ctx, fleet))
        self._enter(State.AMOUNT, keypad="amount", presets=presets, max_amount=limit, amount=0)
        buf = ""
        while True:
            k = self._next_key()
            amount = 0
            if k.startswith("preset:"):
                amount = int(k.split(":", 1)[1]) if k.split(":", 1)[1].isdigit() else 0
            elif k.isdigit() and len(buf) < 6:
                buf = (buf + k).lstrip("0")
            elif k == "back":
                buf = buf[:-1]
            elif k == "clear":
                buf = ""
            elif k == "ok":
                amount = int(buf or "0")
            if not amount:
                self._update(amount=int(buf or "0"), guidance=None)
                continue
            problem = self._amount_ok(amount, ctx, fleet)
            if not problem:
                ctx.amount = amount
                self._update(amount=amount, guidance=None)
                return
            buf = ""
            self._update(amount=0, guidance=msg.outcome(problem).as_dict())
