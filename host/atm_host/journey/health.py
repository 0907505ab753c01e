"""Service state: the health check, out of service and back by itself, telemetry, commands."""

from atm_msg.denominate import denominate
from atm_msg.errors import MsgError
from atm_msg.schemas import Cassette, Command, TxnResult
from atm_wire import messages as m

from atm_host.link.errors import LinkError
from atm_host.link.results import CassetteInfo, Status

from . import messages as msg
from .core import LINK_LOST, log
from .link_health import LinkHealthMixin
from .ports import LinkCounters
from .report import ReportMixin
from .states import State


class HealthMixin(LinkHealthMixin, ReportMixin):
    """Decides in or out of service and reports it to the console."""

    def health(self) -> list[str]:
        """Causes that keep the ATM out of service now (empty: in service)."""
        causes: list[str] = []
        if self._operator_oos:
            causes.append("operator")
        if not self.bank.connected:
            causes.append("bank_unreachable")
        elif self.bank.fleet is None:
            causes.append("not_configured")
        causes += self._dispenser_causes()
        if self.pending.all():
            self._recover_pending()
            if self.pending.all():
                causes.append("dispenser_fault")
        return list(dict.fromkeys(causes))

    def _dispenser_causes(self) -> list[str]:
        """What the dispenser itself holds the ATM out of service for (a faulted one is reset first)."""
        causes: list[str] = []
        try:
            st = self.dispenser.status()
            self._link_up()
            if st.state == m.STATE_FAULT or st.locked:
                st = self._reset_faulted(st)
                if st.state == m.STATE_FAULT or st.locked:
                    causes.append("dispenser_fault")
            if st.tamper:
                causes.append("tamper")
            if st.door_open:
                causes.append("door_open")
            info = self.dispenser.cassette_info()
            self._set_cassettes(info)
            if not self._payable(info):
                causes.append("cassettes_empty")
        except LINK_LOST as exc:  # the port is gone: a ReconnectingDispenser is reopening it meanwhile
            causes.append("dispenser_link_lost")
            self._link_down(exc)
        except LinkError as exc:
            log.warning("dispenser not answering: %s", exc)
            causes.append("dispenser_offline")
        return causes

    def _reset_faulted(self, st: Status) -> Status:
        """A cleared jam comes back by itself: reset (at most every reset_retry_s) purges the path."""
        now = self.clock()
        if now - self._last_reset < self.cfg.reset_retry_s:
            return st
        self._last_reset = now
        try:
            self.dispenser.reset()
            return self.dispenser.status()
        except LinkError as exc:
            log.info("dispenser reset did not recover: %s", exc)
            return st

    def _payable(self, info: CassetteInfo) -> bool:
        """Can the cassettes pay at least the smallest preset (or the smallest note)?"""
        smallest = min(self.cfg.presets_yuan)
        try:
            denominate(smallest, list(info.denominations), list(info.counts), self._max_notes())
        except MsgError:
            return any(c > 0 for c in info.counts) and smallest < min(info.denominations)
        return True

    def _set_cassettes(self, info: CassetteInfo) -> None:
        self._cassettes = info
        low = self.cfg.min_notes_low
        self.bank.cassettes[:] = [
            Cassette(
                denomination=d,
                count=c,
                status="empty" if c == 0 else "low" if c <= low else "ok",
            )
            for d, c in zip(info.denominations, info.counts, strict=True)
        ]

    def _out_of_service(self, causes: list[str]) -> None:
        if tuple(causes) != self._causes:
            log.warning("out of service: %s", causes)
            self.bank.send_event("out_of_service", "alarm", {"causes": ",".join(causes)})
            self._causes = tuple(causes)
        self._enter(
            State.OUT_OF_SERVICE,
            causes=tuple(causes),
            causes_text=tuple(msg.CAUSES.get(c, msg.Text(c, c)).as_dict() for c in causes),
        )
        self._sleep(self.cfg.timeouts.idle_check_s)

    def _telemetry(self, causes: list[str]) -> None:
        now = self.clock()
        if now - self._last_telemetry < self.cfg.telemetry_s:
            return
        self._last_telemetry = now
        state = "in_service"
        if causes:
            faulty = {"dispenser_fault", "dispenser_offline", "dispenser_link_lost", "tamper"} & set(causes)
            state = "fault" if faulty else "maintenance" if causes == ["operator"] else "out_of_service"
        counters = dict(self.counters)
        try:
            counters.update({f"mcu_{k}": v for k, v in self.dispenser.counters().items()})
        except LinkError:
            pass
        if isinstance(self.dispenser, LinkCounters):
            counters.update({f"dispenser_{k}": v for k, v in self.dispenser.link_counters().items()})
        try:
            max_notes: int | None = self._max_notes()  # shown on the console beside the cassettes
        except LinkError:
            max_notes = None
        self.bank.send_telemetry(state, counters, max_notes=max_notes)

    def _on_command(self, cmd: Command) -> tuple[bool, str]:
        if cmd.name == "out_of_service":
            self.operator(True)
            return True, "out of service after the journey in progress"
        if cmd.name == "in_service":
            self.operator(False)
            return True, "in service"
        if cmd.name == "send_counters":
            self._last_telemetry = -1e9
            return True, "telemetry follows"
        return False, f"{cmd.name} not supported by the journey"

    def _on_txn_result(self, result: TxnResult) -> None:
        with self._cond:
            self.bank_results[result.txid] = result
            self._cond.notify_all()
