"""Dispenser link health: lost and restored, and the MCU configured after every new hello."""

from atm_host.link.errors import LinkError
from atm_host.link.results import Hello

from .core import JourneyCore, log


class LinkHealthMixin(JourneyCore):
    """Tells the console when the dispenser link is lost or back; re-configures a new MCU."""

    def _sync_dispenser(self) -> None:
        """After every (re)connect or MCU reboot (a new hello): set the retract timeout, report versions."""
        hello = self.dispenser.info
        if hello is self._synced_hello:
            return
        self.dispenser.set_config(self.cfg.retract_timeout_ms)  # the MCU forgets it when it restarts
        self._synced_hello = hello
        if self._versions_sent != (hello.firmware, hello.protocol_version):
            self._report_versions(hello)

    def _report_versions(self, hello: Hello) -> None:
        """Tell the fleet (the console's per-ATM detail) which firmware and models this ATM runs."""
        embedder = self.pipe.embedder_entry
        self.bank.send_event(
            "versions",
            "info",
            {
                "firmware": hello.firmware,
                "protocol": hello.protocol_version,
                "model": f"{self.pipe.config.embedder}:{embedder.sha256[:12]}",
            },
        )
        self._versions_sent = (hello.firmware, hello.protocol_version)

    def _link_down(self, exc: LinkError) -> None:
        if self._link_lost:
            return
        self._link_lost = True
        self.counters["link_lost"] += 1
        log.error("dispenser link lost: %s", exc)
        self.bank.send_event("dispenser_link", "alarm", {"state": "lost", "error": str(exc)[:100]})

    def _link_up(self) -> None:
        """The dispenser answered: after a loss tell the console; after any new hello reconfigure it."""
        if self._link_lost:
            self._link_lost = False
            self.counters["link_restored"] += 1
            hello = self.dispenser.info
            log.warning("dispenser link restored (firmware %s)", hello.firmware)
            detail: dict[str, str | int] = {"state": "restored", "firmware": hello.firmware}
            detail["boot_count"] = hello.boot_count
            self.bank.send_event("dispenser_link", "info", detail)
        self._sync_dispenser()
