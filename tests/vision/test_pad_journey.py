"""The journey's face step with the real models: a live customer passes, a swap to another face fails.

The state machine runs with the real FacePipeline and the scene camera (`ScriptedCamera`); the bank and
the dispenser are the journey tests' fakes (tests/journey/fakes.py), which is enough here: the face step
ends before either is asked for money.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from atm_host.journey.cameras import ScriptedCamera, challenge_on_screen, sitter_from_photo
from atm_host.journey.config import JourneyConfig
from atm_host.journey.machine import Journey
from atm_host.journey.states import Snapshot, State
from atm_host.vision.pipeline import FacePipeline
from journey.fakes import Customer, FakeBank, FakeDispenser, issue

from .conftest import read

WAIT_S = 30.0


def _config() -> JourneyConfig:
    t = {"idle_check_s": 0.05, "face_s": 20.0, "challenge_s": 8.0, "second_check_s": 5.0}
    return JourneyConfig.model_validate({"timeouts": t, "retract_timeout_ms": 1000, "telemetry_s": 0.2})


@pytest.fixture
def atm(pipe: FacePipeline, tmp_path: Path) -> Iterator[tuple[Journey, ScriptedCamera, FakeBank]]:
    camera = ScriptedCamera(fps=60.0)
    bank = FakeBank()
    journey = Journey(_config(), camera, FakeDispenser(), bank, pipe, pending_path=tmp_path / "pending.json")
    camera.follow(lambda: challenge_on_screen(journey.snapshot))
    journey.start()
    journey.wait_state({State.IDLE}, WAIT_S)
    yield journey, camera, bank
    journey.stop()


def _to_face(journey: Journey, camera: ScriptedCamera) -> None:
    c = Customer(1001, 5001)
    camera.show_phone(issue(c))
    assert journey.wait_state({State.FACE, State.END}, WAIT_S).state is State.FACE


def test_a_live_customer_passes_the_face_step_after_a_turn(
    atm: tuple[Journey, ScriptedCamera, FakeBank], pipe: FacePipeline, unaligned: dict[str, list[Path]]
) -> None:
    journey, camera, _ = atm
    person = camera.live_customer(sitter_from_photo(pipe, read(unaligned[sorted(unaligned)[0]][0])))
    _to_face(journey, camera)
    camera.show_customer(person)
    snap = journey.wait_state({State.SECOND_CHECK, State.END}, WAIT_S)
    assert snap.state is State.SECOND_CHECK, journey.records[-1:] if journey.records else snap
    assert camera.performed and camera.performed[0].name.startswith("TURN")  # every customer is asked
    journey.key("cancel")


def test_the_victims_photo_then_the_attackers_live_face_is_refused(
    atm: tuple[Journey, ScriptedCamera, FakeBank], pipe: FacePipeline, unaligned: dict[str, list[Path]]
) -> None:
    journey, camera, bank = atm
    people = sorted(unaligned)
    victim = read(unaligned[people[0]][0])
    attacker = camera.live_customer(sitter_from_photo(pipe, read(unaligned[people[1]][0])))
    photo = camera.render_face(victim, pipe.source_eye_px(victim))

    def swap(snap: Snapshot) -> None:
        if snap.state is State.CHALLENGE and camera.scene != "face":  # the attacker steps in to act
            camera.show_customer(attacker)

    camera.show_nothing()
    unsubscribe = journey.subscribe(swap)
    _to_face(journey, camera)
    camera.show_frame(photo, "victim photo")
    snap = journey.wait_state({State.SECOND_CHECK, State.END}, WAIT_S)
    unsubscribe()
    assert snap.state is State.END
    rec = journey.records[-1]
    assert rec.outcome == "attack", rec
    assert "challenge not passed: another face" in rec.reason, rec.reason  # refused by the continuity
    assert attacker.frame is not None and camera.performed  # the attacker did act out the challenge
    assert not bank.requests and bank.events_of("presentation_attack")
