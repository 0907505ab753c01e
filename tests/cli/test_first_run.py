"""A new user's first commands: `./atm` usage and exit codes, and one clean error line per expected failure.

Every test runs the real command as a subprocess (the `atm` script, or the module it execs) and checks
the exit code and that stderr is exactly one `error:` line, with no traceback.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from atm_host.vision.paths import shared_dir

REPO = Path(__file__).resolve().parents[2]
ATM = str(REPO / "atm")
COMMANDS = ("demo", "test", "bench", "cli", "sim", "bank", "console", "vision", "models", "doctor", "flash")
COMMANDS_ALL = (*COMMANDS, "setup")


def run(
    args: list[str], timeout_s: float = 120.0, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, timeout=timeout_s, check=False, env=env, input=input
    )


def py(
    *args: str, timeout_s: float = 120.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, *args], timeout_s=timeout_s, env=env)


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    """The single `error:` line on stderr (fails on a traceback or on more lines)."""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in res.stderr, res.stderr
    assert len(lines) == 1, res.stderr
    assert "error" in lines[0], lines[0]
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----- ./atm --------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [[], ["help"], ["--help"], ["-h"]])
def test_usage_lists_every_command(argv: list[str]) -> None:
    res = run([ATM, *argv])
    assert res.returncode == 0, res.stderr
    assert "set -euo" not in res.stdout and "pipefail" not in res.stdout
    listed = {ln.split()[0] for ln in res.stdout.splitlines() if ln.startswith("  ") and ln.split()}
    assert set(COMMANDS_ALL) <= listed, listed


def test_unknown_command_is_an_error() -> None:
    res = run([ATM, "frobnicate"])
    assert res.returncode == 2
    assert "frobnicate" in one_error_line(res)
    assert res.stdout == ""


def test_atm_test_help_does_not_start_the_suite() -> None:
    res = run([ATM, "test", "--help"])
    assert res.returncode == 0, res.stderr
    assert "usage: ./atm test" in res.stdout
    assert "===" not in res.stdout  # no step ran


def test_atm_doctor_runs_the_doctor() -> None:
    res = run([ATM, "doctor", "--help"])
    assert res.returncode == 0, res.stderr
    assert "usage: ./atm doctor" in res.stdout and "--broker-host" in res.stdout


def test_setup_installs_the_stubs_once_and_runs_the_models_step() -> None:
    script = (REPO / "atm").read_text()
    # One pip install into the stubs target (two installs printed ~60 "target directory already exists")
    assert script.count('--target "$STUBS/rp2"') == 1
    stamp = REPO / ".venv" / ".atm-models-stamp"
    stamp.unlink(missing_ok=True)  # as on a fresh clone: the models step must run
    res = run([ATM, "setup"], timeout_s=600)
    assert res.returncode == 0, res.stderr
    assert "models step" in res.stderr
    assert "already exists" not in res.stderr + res.stdout
    assert stamp.is_file()
    again = run([ATM, "setup"])
    assert again.returncode == 0 and "models step" not in again.stderr


def test_setup_says_so_when_a_model_cannot_be_had(tmp_path: Path) -> None:
    (tmp_path / "models" / "minifasnet").mkdir(parents=True)  # a shared folder without the liveness models
    res = run([ATM, "setup"], env=dict(os.environ, ATM_SHARED=str(tmp_path)))
    assert res.returncode == 1
    assert "is missing" in res.stderr and "set-up incomplete" in res.stderr
    assert "Traceback" not in res.stderr


# ----- one error line per expected failure ----------------------------------------------------------


def test_sim_ctl_without_a_board() -> None:
    res = run([ATM, "sim", "ctl", "--port", str(free_port()), "state"])
    assert res.returncode == 2
    assert "no simulated board" in one_error_line(res)


def test_console_with_a_corrupt_database(tmp_path: Path) -> None:
    db = tmp_path / "console.db"
    db.write_bytes(os.urandom(8192))
    for args in (
        ["verify-audit", "--db", str(db)],
        ["adduser", "--db", str(db), "--username", "op", "--password-stdin"],
    ):
        res = run([sys.executable, "-m", "atm_console", *args], input="pw-123456789\n")
        assert res.returncode == 2
        assert "is unusable" in one_error_line(res)


def test_console_serve_without_a_broker(tmp_path: Path) -> None:
    res = py("-m", "atm_console", "serve", "--db", str(tmp_path / "c.db"), "--broker-port", str(free_port()),
             "--http-port", "0")  # fmt: skip
    assert res.returncode == 3
    assert "no MQTT broker" in one_error_line(res)
    res = py("-m", "atm_console", "tail", "--port", str(free_port()), "--duration", "1")
    assert res.returncode == 2
    assert "no MQTT broker" in one_error_line(res)


def _bank_key(tmp_path: Path) -> Path:
    key = tmp_path / "signing.pem"
    assert py("-m", "atm_bank", "--signing-key", str(key), "gen-signing-key").returncode == 0
    return key


def _bank_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "bank.json"
    cfg.write_text(f'{{"manifest_path": "{REPO / "models" / "manifest.json"}"}}')
    return cfg


def bank(tmp_path: Path, config: Path, key: Path, cmd: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`atm_bank serve|worker` against a port where no broker listens."""
    db = f"sqlite:///{tmp_path / 'b.db'}"
    args = [
        "--db",
        db,
        "--config",
        str(config),
        "--signing-key",
        str(key),
        cmd,
        "--port",
        str(free_port()),
        *extra,
    ]
    return py("-m", "atm_bank", *args, timeout_s=60)


@pytest.mark.parametrize("cmd", ["serve", "worker"])
def test_bank_with_a_bad_config_exits_once(tmp_path: Path, cmd: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"no_such_option": 1}')
    res = bank(tmp_path, bad, _bank_key(tmp_path), cmd)
    assert res.returncode == 2
    assert "invalid" in one_error_line(res)


@pytest.mark.parametrize("cmd", ["serve", "worker"])
def test_bank_without_its_signing_key(tmp_path: Path, cmd: str) -> None:
    res = bank(tmp_path, _bank_config(tmp_path), tmp_path / "missing.pem", cmd)
    assert res.returncode == 2
    assert "signing key" in one_error_line(res)


def test_bank_serve_without_a_broker(tmp_path: Path) -> None:
    res = bank(tmp_path, _bank_config(tmp_path), _bank_key(tmp_path), "serve")
    assert res.returncode == 3
    assert "no MQTT broker" in one_error_line(res)


def _shared_copy(tmp_path: Path, tamper: bool) -> Path:
    """A shared folder whose liveness models are missing, or present with one byte changed."""
    root = tmp_path / "shared"
    (root / "models" / "minifasnet").mkdir(parents=True)
    if tamper:
        for f in (shared_dir() / "models" / "minifasnet").glob("*.tflite"):
            data = bytearray(f.read_bytes())
            data[len(data) // 2] ^= 0xFF
            (root / "models" / "minifasnet" / f.name).write_bytes(bytes(data))
    return root


@pytest.mark.parametrize("tamper", [False, True], ids=["missing", "tampered"])
def test_demo_and_vision_with_a_bad_model(tmp_path: Path, tamper: bool) -> None:
    env = dict(os.environ, ATM_SHARED=str(_shared_copy(tmp_path, tamper)))
    faces = str(shared_dir() / "data" / "faces" / "unaligned150")
    want = "sha256" if tamper else "missing"
    res = py(
        "-m", "atm_tools.demo", "--workdir", str(tmp_path / "w"), "--faces", faces, env=env, timeout_s=180
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert want in one_error_line(res).lower()
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())  # cleaned up
    res = run([ATM, "models"], env=env)
    assert res.returncode == 2
    assert ("sha256" if tamper else "is missing") in one_error_line(res)


def test_demo_refuses_a_used_workdir(tmp_path: Path) -> None:
    work = tmp_path / "w"
    (work / "board").mkdir(parents=True)
    res = py("-m", "atm_tools.demo", "--workdir", str(work))
    assert res.returncode == 2
    assert "previous demo" in one_error_line(res)
    assert (work / "board").is_dir()  # never removes what it did not make


def test_two_demos_cannot_share_a_workdir(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    fd = os.open(work / ".demo.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running demo holds
        res = py("-m", "atm_tools.demo", "--workdir", str(work))
    finally:
        os.close(fd)
    assert res.returncode == 2
    assert "in use by another running demo" in one_error_line(res)
    assert work.is_dir()


def test_demo_password_file_must_be_readable(tmp_path: Path) -> None:
    res = py("-m", "atm_tools.demo", "--password-file", str(tmp_path / "nope"))
    assert res.returncode == 2
    assert "password file" in one_error_line(res)


def test_demo_walks_a_withdrawal_in_words_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """`./atm demo` end to end: exit 0, the summary in words, its workdir removed (kept with --keep)."""
    env = dict(os.environ, TMPDIR=str(tmp_path), ATM_CONSOLE_PASSWORD="demo-password-123")
    res = run([ATM, "demo"], timeout_s=300, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = res.stdout
    assert "Cash taken - thank you" in out and "bank ledger: debited" in out
    assert "last 4 digits of the account number (0042) and of the mobile number (0000)" in out
    assert "demo-password-123" not in out and "(your password)" in out  # from the environment, not shown
    assert "INFO:" not in out + res.stderr  # no TFLite runtime chatter
    assert "disconnected" not in out + res.stderr and "link open" not in out + res.stderr  # in host.log
    assert not re.search(r"\[\d+, \d+", out), "a Python list in the user output"
    assert list(tmp_path.iterdir()) == []  # /tmp/atm-demo-* removed


def test_passwords_come_from_a_file_or_the_environment(tmp_path: Path) -> None:
    """Never only argv (visible in ps): console adduser reads a file or $ATM_CONSOLE_PASSWORD."""
    from atm_console.auth import Auth
    from atm_console.store import Store

    db = tmp_path / "c.db"
    (tmp_path / "pw").write_text("from-a-file-123\n")
    res = py("-m", "atm_console", "adduser", "--db", str(db), "--username", "alice",
             "--password-file", str(tmp_path / "pw"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    env = dict(os.environ, ATM_CONSOLE_PASSWORD="from-the-env-456")
    res = py("-m", "atm_console", "adduser", "--db", str(db), "--username", "bob", env=env)
    assert res.returncode == 0, res.stderr
    store = Store(db)
    try:
        auth = Auth(store)
        assert auth.login("alice", "from-a-file-123")[1].username == "alice"
        assert auth.login("bob", "from-the-env-456")[1].username == "bob"
    finally:
        store.close()
    res = py("-m", "atm_console", "adduser", "--db", str(db), "--username", "carol",
             "--password-file", str(tmp_path / "missing"))  # fmt: skip
    assert res.returncode == 2 and "password file" in one_error_line(res)
    res = bank(tmp_path, _bank_config(tmp_path), _bank_key(tmp_path), "serve", "--password-file",
               str(tmp_path / "missing"))  # fmt: skip
    assert res.returncode == 2 and "password file" in one_error_line(res)


def _unit(name: str) -> dict[str, dict[str, str]]:
    """A systemd unit file as sections of key -> value (continuation lines joined)."""
    text = (REPO / "deploy" / "systemd" / name).read_text().replace("\\\n", " ")
    out: dict[str, dict[str, str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out[section] = {}
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[section][key] = value
    return out


def test_units_fail_on_a_bad_config_instead_of_restarting_forever(tmp_path: Path) -> None:
    """Exit 2 (config, key) stops the unit; other failures restart within a start limit, not forever."""
    for name in ("atm-bank-worker@.service", "atm-host.service"):
        unit = _unit(name)
        assert unit["Service"]["RestartPreventExitStatus"] == "2", name
        assert int(unit["Unit"]["StartLimitBurst"]) >= 1 and int(unit["Unit"]["StartLimitIntervalSec"]) > 0
    # the worker unit's own command line, with a config that is wrong: one line, exit 2, no restart loop
    argv = _unit("atm-bank-worker@.service")["Service"]["ExecStart"].split()[1:]
    assert argv[:2] == ["-m", "atm_bank"]
    bad = tmp_path / "bank.json"
    bad.write_text('{"no_such_option": 1}')
    swap = {"/etc/atm-bank/bank.json": str(bad), "%i": "0"}
    args = [swap.get(a, a) for a in argv[2:]]
    args[args.index("--db") + 1] = f"sqlite:///{tmp_path / 'b.db'}"
    res = py("-m", "atm_bank", *args, timeout_s=60)
    assert res.returncode == 2 and "invalid" in one_error_line(res)


def _die_at_once(index: int, args: object) -> None:
    """A bank worker that dies as soon as it starts (what a crash loop looks like to `serve`)."""
    raise SystemExit(7)


def test_bank_serve_stops_a_worker_crash_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No endless restart loop: three deaths within 10 s of their start end `serve` with an error."""
    import signal

    import atm_bank.__main__ as bank_main
    from atm_bank.errors import BankError
    from atm_tools.mosquitto import Mosquitto

    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        monkeypatch.setattr(bank_main, "run_worker", _die_at_once)
        args = bank_main.build_parser().parse_args(
            ["--db", f"sqlite:///{tmp_path / 'b.db'}", "--config", str(_bank_config(tmp_path)),
             "--signing-key", str(_bank_key(tmp_path)), "serve", "--port", str(broker.port)]
        )  # fmt: skip
        with pytest.raises(BankError, match=r"keeps exiting at start \(code 7\)"):
            bank_main.cmd_serve(args)
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
        broker.stop()


@pytest.mark.parametrize("tamper", [False, True], ids=["missing", "tampered"])
def test_the_atm_host_refuses_to_start_without_its_models(tmp_path: Path, tamper: bool) -> None:
    """`python -m atm_host.journey` (the atm-host unit): one error line, exit 2, before anything starts."""
    import json

    data = json.loads((REPO / "deploy" / "systemd" / "host.example.json").read_text())
    data["bank"]["command_keys"] = [os.urandom(32).hex()]
    data["state_dir"] = str(tmp_path / "state")
    data["vision"] = {
        "liveness": {"model_dir": str(_shared_copy(tmp_path, tamper) / "models" / "minifasnet")}
    }
    cfg = tmp_path / "host.json"
    cfg.write_text(json.dumps(data))
    res = py("-m", "atm_host.journey", "--config", str(cfg))
    assert res.returncode == 2
    assert ("sha256" if tamper else "is missing") in one_error_line(res)
