"""The state table: every state has a prompt in both languages, money states always pass through REPORT."""

from atm_host.journey import messages as msg
from atm_host.journey.config import JourneyConfig
from atm_host.journey.states import CANCELLABLE, TRANSITIONS, State, Timings

MONEY = {State.DISPENSE, State.PRESENT}


def test_every_state_has_transitions_and_a_bilingual_prompt() -> None:
    assert set(TRANSITIONS) == set(State)
    for s in State:
        p = msg.prompt(s.value)
        assert p.zh and p.en and p.zh != p.en


def test_every_journey_state_can_end_and_money_states_end_only_through_report() -> None:
    for s in set(State) - {State.IDLE, State.OUT_OF_SERVICE, State.END}:
        seen, todo = set(), [s]
        while todo:
            cur = todo.pop()
            seen.add(cur)
            todo += [n for n in TRANSITIONS[cur] if n not in seen]
        assert State.END in seen, s
    for s in MONEY:
        assert State.END not in TRANSITIONS[s] and State.REPORT in TRANSITIONS[s] | {State.PRESENT}
    assert not (CANCELLABLE & (MONEY | {State.AUTHORIZE, State.NONCE, State.REPORT}))


def test_every_outcome_and_decline_has_text() -> None:
    for code in msg.DECLINE_OUTCOME.values():
        assert code in msg.OUTCOMES
    assert msg.guidance(["come closer", "hold still"]).en == "Come a little closer; Hold still"
    assert msg.guidance(["something new"]).en == "something new"


def test_timings_exclude_the_person() -> None:
    t = Timings()
    marks = {
        "qr_seen": 0.0,
        "qr_decoded": 0.003,
        "token_ok": 0.004,
        "face_seen": 2.0,
        "face_ok": 2.06,
        "inputs_done": 9.0,
        "nonce_ok": 9.001,
        "approved": 9.011,
    }
    for k, v in marks.items():
        t.mark(k, v)
    s = t.summary()
    assert round(s["machine_qr_to_approval_ms"]) == 75
    assert round(s["person_ms"]) == round((2.0 - 0.004 + 9.0 - 2.06) * 1000)
    assert round(s["wall_qr_to_approval_ms"]) == 9011


def test_config_refuses_unknown_options() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        JourneyConfig.model_validate({"timeouts": {"face_seconds": 3}})
    assert JourneyConfig().retract_timeout_ms == 30000
