"""The small interfaces the journey drives: camera, dispenser, face pipeline, bank (real classes fit them)."""

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

from atm_msg.schemas import (
    AbandonReason,
    AuthRequest,
    AuthResponse,
    Cassette,
    Command,
    Event,
    FleetConfig,
    TxnResult,
)

from atm_host.link.events import EventSubscription
from atm_host.link.results import CassetteInfo, DispenseResult, Hello, Nonce, Report, Status
from atm_host.vision.challenge import Challenge
from atm_host.vision.config import VisionConfig
from atm_host.vision.detector import Detection
from atm_host.vision.frame import FloatArray, Frame
from atm_host.vision.liveness import PassiveResult
from atm_host.vision.manifest import ModelEntry
from atm_host.vision.pipeline import FaceSample
from atm_host.vision.session import ChallengeOutcome


class Camera(Protocol):
    """A frame source (atm_host.vision.sources.FrameSource): BGR uint8 frames, blocking at the frame rate."""

    def read(self) -> Frame: ...

    def close(self) -> None: ...


class Dispenser(Protocol):
    """What the journey asks of the dispenser MCU (atm_host.link.DispenserClient)."""

    @property
    def info(self) -> Hello: ...

    def status(self, timeout: float | None = None) -> Status: ...

    def cassette_info(self, timeout: float | None = None) -> CassetteInfo: ...

    def get_nonce(self, timeout: float | None = None) -> Nonce: ...

    def dispense(self, token: bytes, timeout: float | None = None) -> DispenseResult: ...

    def present(self, txid: bytes, timeout: float | None = None) -> int: ...

    def retract(self, txid: bytes, timeout: float | None = None) -> int: ...

    def get_report(self, txid: bytes, timeout: float | None = None) -> Report: ...

    def reset(self, timeout: float | None = None) -> int: ...

    def set_config(self, retract_timeout_ms: int, timeout: float | None = None) -> None: ...

    def counters(self, timeout: float | None = None) -> dict[str, int]: ...

    def event_queue(self, maxsize: int = 0) -> EventSubscription: ...


@runtime_checkable
class LinkCounters(Protocol):
    """A dispenser that reopens its port (atm_host.link.reconnect) and counts it, for telemetry."""

    def link_counters(self) -> dict[str, int]: ...


class FacePipe(Protocol):
    """What the journey asks of the face pipeline (atm_host.vision.pipeline.FacePipeline)."""

    @property
    def config(self) -> VisionConfig: ...

    @property
    def embedder_entry(self) -> ModelEntry: ...

    def sample(self, frame: Frame, gate: bool = True) -> FaceSample: ...

    def check_liveness(self, frame: Frame, face: Detection) -> PassiveResult: ...

    def run_challenge(
        self,
        frames: Iterable[Frame],
        challenge: Challenge,
        reference: Sequence[FloatArray] = (),
        box: tuple[float, float, float, float] | None = None,
    ) -> ChallengeOutcome: ...


class Bank(Protocol):
    """What the journey asks of the bank link (atm_host.banklink.client.BankLink)."""

    atm: str
    fleet: FleetConfig | None
    cassettes: list[Cassette]
    on_command: Callable[[Command], tuple[bool, str]] | None
    on_txn_result: Callable[[TxnResult], None] | None

    @property
    def connected(self) -> bool: ...

    def authorize(self, req: AuthRequest, timeout_s: float = 10.0) -> AuthResponse: ...

    def send_event(self, kind: str, severity: str, detail: dict[str, str | int] | None = None) -> Event: ...

    def send_report(self, txid: str, report: bytes) -> None: ...

    def send_abandon(
        self,
        *,
        request_id: str | None,
        txid: str | None,
        reason: AbandonReason,
        detail: str,
    ) -> None: ...

    def send_telemetry(self, state: str, counters: dict[str, int], max_notes: int | None = None) -> bool: ...
