"""`./atm demo`: the whole ATM on this machine (broker, bank, board, host journey, screen) and a withdrawal.

`LocalStack` starts everything the way a site would run it, but locally: a throwaway mosquitto, the bank
service (`python -m atm_bank serve`, a real subprocess) with demo customers enrolled from face photos,
the simulated board running the real firmware, the host's journey with a scene-generator camera, and the
ATM screen. The end-to-end tests and the journey benchmark use the same stack.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np
from atm_bank import phone, signing
from atm_bank.db import Cursor, open_database
from atm_bank.registry import Template, enroll, provision_atm
from atm_host.banklink.client import BankLink
from atm_host.banklink.outbox import Outbox
from atm_host.banklink.settings import LinkSettings
from atm_host.journey.cameras import LiveCustomer, ScriptedCamera, challenge_on_screen, sitter_from_photo
from atm_host.journey.config import JourneyConfig
from atm_host.journey.machine import TEMPLATE_VERSION, Journey, JourneyRecord
from atm_host.journey.messages import outcome as outcome_text
from atm_host.journey.states import Snapshot, State
from atm_host.link import DispenserClient
from atm_host.link.reconnect import ReconnectingDispenser, serial_factory
from atm_host.link.signing import sign_replenish
from atm_host.vision.challenge import Challenge
from atm_host.vision.config import VisionConfig
from atm_host.vision.errors import VisionError
from atm_host.vision.frame import Frame
from atm_host.vision.manifest import load_manifest, read_verified
from atm_host.vision.paths import shared_dir
from atm_host.vision.pipeline import FacePipeline, FaceSample
from atm_host.vision.runtime import entry_path
from atm_host.vision.scene import Optics, Sitter, render_person
from atm_host.vision.template import make_template
from atm_msg.cmdsign import public_hex
from atm_msg.errors import MsgError
from atm_msg.schemas import Cassette
from atm_sim.board import SimBoard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from atm_tools.mosquitto import Mosquitto, free_port

ATM_ID = "ATM0001"
DEMO_HELPLINE = "400-000-0000"  # a placeholder number the screen shows (a site sets its bank's helpline)
DENOMS = (100, 50, 20, 10)
ROOT = Path(__file__).resolve().parents[2]
FACES = "data/faces/unaligned150"  # <person>/<photo> folders; the demo customer is chosen from them
ATTACK_IMAGE = "models/minifasnet/image_F2.jpg"  # a real presentation-attack sample (photo of a photo)
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# A customer refused after a challenge tries once more, as a real one would. The scripted customer's blinks
# and turns are all seen (docs/vision.md), so a second attempt in the summary is a regression to look at.
MAX_ATTEMPTS = 2
LOCK_NAME = ".demo.lock"  # flock-ed while a demo runs in the workdir: two demos never share one
PASSWORD_ENV = "ATM_CONSOLE_PASSWORD"  # the console operator's password, else --password-file, else random

# What a bank decline reason means, for the person watching the demo (the customer sees less).
REASON_WORDS: dict[str, str] = {
    "SECOND_CHECK_FAILED": "wrong account/mobile digits: the bank counts a failed attempt",
    "TOO_FREQUENT": "refused before any check: inside the bank's minimum interval between attempts",
    "ATTEMPTS_EXCEEDED": "the customer's daily attempt limit is used up",
    "LOCKED_OUT": "locked out after repeated failures (the lockout grows with each one)",
    "LIMIT_DAILY": "above the customer's daily limit",
    "LIMIT_PER_WITHDRAWAL": "above the per-withdrawal limit",
    "LIMIT_ACCOUNT_TOTAL": "above the account's cardless total",
    "LIVENESS_FAILED": "the face was not a live person",
    "FACE_MISMATCH": "the face does not match the enrolled one",
}


class DemoError(Exception):
    """An expected failure of the demo (busy or used workdir, missing photos): one error line, exit 2."""


@contextlib.contextmanager
def stderr_to(path: Path) -> Generator[None]:
    """Send this process's fd 2 to `path` for a while (the TFLite runtime's C++ INFO lines go there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as out:
        os.dup2(out.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


class Workdir:
    """The demo's folder, locked while the demo runs and removed afterwards unless kept."""

    def __init__(self, path: Path | None, keep: bool) -> None:
        self.made = path is None or not path.exists()
        if path is None:
            path = Path(tempfile.mkdtemp(prefix="atm-demo-"))
        self.path = path
        self.keep = keep
        self._lock: int | None = None

    def __enter__(self) -> Path:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DemoError(f"workdir {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self.made = False  # someone else's: never remove it
            raise DemoError(f"workdir {self.path} is in use by another running demo") from None
        self._lock = fd
        if any(p.name != LOCK_NAME for p in self.path.iterdir()):
            self._unlock()
            self.made = False
            raise DemoError(
                f"workdir {self.path} holds a previous demo's state (bank, board flash, keys): "
                "give an empty or new folder, or delete it"
            )
        return self.path

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        expected = (DemoError, VisionError, MsgError, FileNotFoundError, KeyboardInterrupt)
        if exc_type is not None and not issubclass(exc_type, expected):  # logs for the diagnosis
            self.keep = True
            print(f"the demo failed: its logs are kept in {self.path}", file=sys.stderr)
        if self.keep:
            self._unlock()
            return
        if self.made:
            shutil.rmtree(self.path, ignore_errors=True)
        else:  # the folder was given empty: leave it empty
            for p in self.path.iterdir():
                if p.name != LOCK_NAME:
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            (self.path / LOCK_NAME).unlink(missing_ok=True)
        self._unlock()


def check_models(cfg: VisionConfig) -> None:
    """Every model of the manifest is present with its sha256 (ModelMissingError / ModelIntegrityError)."""
    for entry in load_manifest(cfg.manifest).models.values():
        read_verified(entry_path(entry, cfg.model_dir, cfg.liveness.model_dir), entry.sha256)


def notes_text(counts: list[int] | tuple[int, ...]) -> str:
    """Note counts per cassette in words: '5 x 100 yuan, 0 x 50 yuan, ...'."""
    return ", ".join(f"{n} x {d}" for d, n in zip(DENOMS, counts, strict=False)) + " yuan"


def outcome_words(outcome: str, reason: str) -> str:
    """A journey outcome and its reason as a sentence."""
    text = outcome_text(outcome).en
    why = REASON_WORDS.get(reason, "")
    return f"{text} ({reason}: {why})" if why else (f"{text} ({reason})" if reason else text)


@dataclass
class Customer:
    """A demo customer: bank identity, second-check numbers and the face the camera will see."""

    customer_id: int
    account_id: int
    account_number: str
    mobile: str
    face: Frame | None = None  # pre-rendered camera frame of the face at 50 cm

    @property
    def account_digits(self) -> str:
        return self.account_number[-4:]

    @property
    def mobile_digits(self) -> str:
        return self.mobile[-4:]


@dataclass
class FacePick:
    """Who the demo customer is: the branch photo the bank enrols and the photo standing at the ATM."""

    person: str
    enrol_photo: Path
    atm_photo: Path
    enrol: FaceSample  # the enrolment frame's sample (its embedding becomes the bank's template)
    sitter: Sitter  # the ATM photo, measured for rendering as a live person
    score: float  # how well the ATM photo matches the enrolment (cosine, >= the threshold)
    skipped: list[str] = field(default_factory=list[str])  # photos passed over and why


def faces_root(folder: Path | None = None) -> Path:
    """The folder of <person>/<photo> face photos: `folder`, else the shared dev set."""
    return folder if folder is not None else shared_dir() / FACES


def choose_customer(pipe: FacePipeline, optics: Optics, root: Path, distance_cm: float = 50.0) -> FacePick:
    """The first person (sorted) with two photos that make good camera frames of the same face.

    Each photo is rendered as a live person at `distance_cm` with `optics` and must pass the detector and
    the quality gate; the first good photo is the branch photo the bank enrols, the next good one whose
    match score reaches the operating threshold is the customer at the ATM. Liveness plays no part in
    the choice: if passive liveness is unsure the customer does the active challenge.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"face photos folder {root} missing (set ATM_SHARED)")
    skipped: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        enrol: tuple[Path, FaceSample] | None = None
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES):
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                skipped.append(f"{folder.name}/{path.name}: not an image")
                continue
            try:
                sitter = sitter_from_photo(pipe, np.asarray(img, dtype=np.uint8))
                sample = pipe.sample(render_person(sitter, optics, distance_cm))
            except VisionError as exc:
                skipped.append(f"{folder.name}/{path.name}: {exc}")
                continue
            if enrol is None:
                enrol = (path, sample)
                continue
            tpl = make_template(
                enrol[1].embedding, pipe.config.embedder, pipe.embedder_entry.sha256, sample.quality.score
            )
            score = pipe.score(tpl, sample.embedding)
            if score >= pipe.threshold:
                return FacePick(folder.name, enrol[0], path, enrol[1], sitter, score, skipped)
            skipped.append(f"{folder.name}/{path.name}: match {score:.3f} < {pipe.threshold:.3f}")
    raise FileNotFoundError(f"no person in {root} has two usable photos of the same face")


def face_path(snaps: list[Snapshot]) -> str:
    """How the face step went, from the snapshots of one journey: passive live, or which challenge."""
    states = [s.state for s in snaps]
    asked: Challenge | None = next((c for c in map(challenge_on_screen, snaps) if c is not None), None)
    after = (State.SECOND_CHECK, State.AMOUNT, State.NONCE)
    if asked is not None:
        start = states.index(State.CHALLENGE)
        passed = any(s in after for s in states[start:])
        return f"challenge '{asked.value}' {'passed' if passed else 'not passed'}"
    if State.FACE not in states:
        return "no face step"
    return "passive live" if any(s in after for s in states) else "refused at the face step"


@dataclass
class Proc:
    """A subprocess this stack started (stopped by its own pid only)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class StackOptions:
    """How to build the local stack."""

    load: list[int] = field(default_factory=lambda: [200, 200, 200, 200])
    journey: JourneyConfig = field(default_factory=JourneyConfig)
    bank_config: dict[str, Any] = field(default_factory=dict[str, Any])
    customers: int = 6
    screen: bool = False
    screen_port: int = 0
    console: bool = False
    console_password: str = ""  # the operator's password; random when empty
    threads: int = 2
    faces: Path | None = None  # <person>/<photo> folders to choose the demo customer from (shared dev set)


class LocalStack:
    """Everything of one ATM and its bank on this machine; a context manager that stops what it started."""

    def __init__(
        self, workdir: Path, options: StackOptions | None = None, log: Callable[[str], None] = print
    ) -> None:
        self.dir = workdir
        self.opt = options or StackOptions()
        self.say = log
        self.procs: list[Proc] = []
        self.broker: Mosquitto | None = None
        self.board: SimBoard | None = None
        self.client: DispenserClient | None = None  # the first connection (set-up commands)
        self.dispenser: ReconnectingDispenser | None = None  # what the journey uses: reopens a lost port
        self.link: BankLink | None = None
        self.journey: Journey | None = None
        self.screen: Any = None
        self.console_url = ""
        self.console_password = ""
        self.camera = ScriptedCamera()
        self.customers: list[Customer] = []
        self.attack_face: Frame | None = None
        self.pick: FacePick | None = None  # who the demo customer is (chosen from the faces folder)
        self.person: LiveCustomer | None = None  # that customer in front of the camera: follows the screen
        self.face_paths: list[str] = []  # per withdraw(): passive live, or the challenge and its result
        self.db_url = f"sqlite:///{workdir / 'bank.db'}"
        self.signing_key: Ed25519PrivateKey | None = None
        self.pipeline: FacePipeline | None = None
        self.device_key = b""
        self.startup_s: dict[str, float] = {}

    # ----- start ------------------------------------------------------------------------------------
    def start(self) -> LocalStack:
        self.dir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        self.broker = Mosquitto(self.dir / "broker")
        self.broker.start()
        self._lap("broker", t)
        t = time.perf_counter()
        vision = VisionConfig(threads=self.opt.threads)
        check_models(vision)  # every model, the lazily loaded liveness ones too: fail before anything runs
        with stderr_to(self.dir / "vision.log"):  # TFLite's "INFO: Created ... delegate" line
            self.pipeline = FacePipeline(vision)
        self._lap("vision models", t)
        t = time.perf_counter()
        self.board = SimBoard(workdir=self.dir / "board", pluggable=True)  # board.unplug() / replug()
        self.board.mech.load(list(self.opt.load))
        self.board.start()
        self.dispenser = ReconnectingDispenser(serial_factory(self.board.stable_port, handshake_s=10))
        self.client = self.dispenser.connect(20)
        self._lap("board", t)
        t = time.perf_counter()
        self._bank_setup()
        self._start_bank()
        self._lap("bank", t)
        t = time.perf_counter()
        self._start_host()
        self._lap("host", t)
        if self.opt.screen:
            self._start_screen()
        if self.opt.console:
            self._start_console()
        return self

    def _lap(self, name: str, t0: float) -> None:
        self.startup_s[name] = time.perf_counter() - t0

    def _bank_setup(self) -> None:
        assert self.client is not None and self.pipeline is not None
        hello = self.client.hello()
        key_path = self.dir / "bank-signing.pem"
        self.signing_key = signing.load(key_path) if key_path.exists() else signing.generate(key_path)
        db = open_database(self.db_url)
        try:
            self.device_key = provision_atm(db, ATM_ID, hello.device_id, list(DENOMS))
        finally:
            db.close()
        if not self.client.status().provisioned:
            self.client.provision(self.device_key)  # the PROVISION command: accepted once per MCU
        nonce = self.client.get_nonce().nonce
        token = sign_replenish(self.device_key, hello.device_id, nonce, DENOMS, list(self.opt.load))
        self.client.replenish(token)
        self._enrol_customers()
        cfg: dict[str, Any] = {"manifest_path": str(ROOT / "models" / "manifest.json")}
        cfg.update(self.opt.bank_config)
        (self.dir / "bank.json").write_text(json.dumps(cfg))

    def _photo(self, rel: str) -> Frame:
        img = cv2.imread(str(shared_dir() / rel), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"face photo {shared_dir() / rel} missing (set ATM_SHARED)")
        return np.asarray(img, dtype=np.uint8)

    def _enrol_customers(self) -> None:
        """Enrol demo customers with the template of a branch photo (as `atm_bank enroll` does).

        The customer is the first person of the faces folder with two usable photos (`choose_customer`);
        at the ATM they are a live person (`LiveCustomer`) who does the active challenge if asked.
        """
        assert self.pipeline is not None
        pipe = self.pipeline
        self.pick = pick = choose_customer(pipe, self.camera.optics, faces_root(self.opt.faces))
        sample = pick.enrol
        self.person = self.camera.live_customer(pick.sitter)
        self.person.prepare()  # every challenge's frames rendered now: the camera keeps its pace
        face_frame = self.person.frame
        attack = self._photo(ATTACK_IMAGE)
        self.attack_face = self.camera.render_face(attack, pipe.source_eye_px(attack))
        template = Template(
            pipe.config.embedder,
            TEMPLATE_VERSION,
            [float(x) for x in sample.embedding],
            float(sample.quality.score),
        )
        (self.dir / "template.json").write_text(
            json.dumps(
                {
                    "model_id": template.model_id,
                    "template_version": template.template_version,
                    "embedding": template.embedding,
                    "quality": template.quality,
                }
            )
        )
        db = open_database(self.db_url)
        try:
            for i in range(self.opt.customers):
                c = Customer(1000 + i, 5000 + i, f"62220200000{i:04d}0042", f"1380013{i:04d}", face_frame)
                enroll(
                    db,
                    customer_id=c.customer_id,
                    account_id=c.account_id,
                    account_number=c.account_number,
                    mobile=c.mobile,
                    template=template,
                )
                self.customers.append(c)
        finally:
            db.close()

    def _spawn(self, name: str, args: list[str]) -> Proc:
        log = self.dir / f"{name}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT)
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def _start_bank(self) -> None:
        assert self.broker is not None
        self._spawn(
            "bank",
            [
                "-m",
                "atm_bank",
                "--db",
                self.db_url,
                "--config",
                str(self.dir / "bank.json"),
                "--signing-key",
                str(self.dir / "bank-signing.pem"),
                "serve",  # supervises its workers and restarts any that dies
                "--workers",
                "2",
                "--port",
                str(self.broker.port),
            ],
        )

    def _start_host(self) -> None:
        assert self.broker is not None and self.client is not None and self.pipeline is not None
        assert self.dispenser is not None
        device = self.client.info.device_id.hex()
        settings = LinkSettings(
            atm_id=ATM_ID,
            device_id=device,
            port=self.broker.port,
            retry_s=0.5,
            command_keys=(self._command_key_hex(),),  # the ATM obeys only the console's signed commands
        )
        cassettes = [Cassette(denomination=d, count=n) for d, n in zip(DENOMS, self.opt.load, strict=True)]
        self.link = BankLink(settings, Outbox(self.dir / "outbox.db"), cassettes)
        self.link.start()
        if not self.link.wait_connected(10):
            raise RuntimeError("the ATM's bank link did not connect to the broker")
        deadline = time.monotonic() + 30
        while self.link.fleet is None:  # the bank worker publishes the retained fleet config on connect
            if time.monotonic() > deadline:
                raise RuntimeError(f"no fleet config from the bank; see {self.dir / 'bank.log'}")
            self._check_procs()
            time.sleep(0.05)
        self.journey = Journey(
            self.opt.journey,
            self.camera,
            self.dispenser,
            self.link,
            self.pipeline,
            pending_path=self.dir / "pending.json",
        )
        journey = self.journey
        self.camera.follow(lambda: challenge_on_screen(journey.snapshot))  # the customer reads the screen
        self.journey.start()
        self.journey.wait_state({State.IDLE}, 20)

    def _start_screen(self) -> None:
        assert self.journey is not None
        from atm_host.screen.server import ScreenInfo, ScreenServer

        info = ScreenInfo(ATM_ID, DEMO_HELPLINE, min(DENOMS))
        self.screen = ScreenServer(self.journey, port=self.opt.screen_port or free_port(), info=info)
        self.screen.start()

    def _command_key_hex(self) -> str:
        """The console's command-signing key (made once per demo); the ATM trusts its public half."""
        path = self.dir / "console-cmd.pem"
        key = signing.load(path) if path.exists() else signing.generate(path)
        return public_hex(key.public_key())

    def _start_console(self) -> None:
        """The operators' console, when its package exists and starts (`python -m atm_console serve`)."""
        assert self.broker is not None
        try:
            import atm_console  # noqa: F401  # pyright: ignore[reportUnusedImport]
        except ImportError:
            self.say("console: atm_console not installed; skipped")
            return
        port = free_port()
        proc = self._spawn(
            "console",
            [
                "-m",
                "atm_console",
                "serve",
                "--broker-port",
                str(self.broker.port),
                "--http-port",
                str(port),
                "--db",
                str(self.dir / "console.db"),
                "--command-key",
                str(self.dir / "console-cmd.pem"),
            ],
        )
        self.console_password = self.opt.console_password or secrets.token_urlsafe(9)
        subprocess.run(
            [sys.executable, "-m", "atm_console", "adduser", "--db", str(self.dir / "console.db"),
             "--username", "operator", "--password-stdin"],
            input=self.console_password + "\n", text=True, capture_output=True, check=True, cwd=str(ROOT),
        )  # fmt: skip
        time.sleep(1.5)
        if proc.popen.poll() is not None:
            self.say(f"console: did not start (see {proc.log}); skipped")
            self.procs.remove(proc)
            return
        self.console_url = f"http://127.0.0.1:{port}/"

    def _check_procs(self) -> None:
        for p in self.procs:
            if p.popen.poll() is not None:
                tail = p.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{p.name} exited with {p.popen.returncode}:\n{tail}")

    # ----- acting as the customer -------------------------------------------------------------------
    def token(self, c: Customer, amount: int = 0) -> str:
        """The phone app: a bank-signed withdrawal token (what `atm_bank issue-token` prints)."""
        assert self.signing_key is not None
        return phone.issue_token(
            self.signing_key,
            key_id=1,
            customer_id=c.customer_id,
            account_id=c.account_id,
            amount_yuan=amount,
            ttl_s=90,
        )

    def withdraw(
        self,
        c: Customer,
        amount: int,
        *,
        take: bool = True,
        face: Frame | None = None,
        account_digits: str | None = None,
        mobile_digits: str | None = None,
        on_state: Callable[[State], None] | None = None,
        timeout_s: float = 60.0,
    ) -> JourneyRecord:
        """Play one customer: show the QR, the face, type the digits and the amount, take the cash."""
        j = self.journey
        assert j is not None and self.board is not None
        done = len(j.records)
        j.wait_state({State.IDLE}, timeout_s)
        snaps: list[Snapshot] = []
        unsubscribe = j.subscribe(snaps.append)  # what the screen showed (face path for the summary)
        self.camera.show_phone(self.token(c))
        snap = j.wait_state({State.FACE, State.END}, timeout_s)
        if snap.state is State.FACE:
            frame = face if face is not None else c.face
            assert frame is not None
            self.camera.show_frame(frame, "face")  # a live customer's frame brings the person, who can act
            snap = j.wait_state({State.SECOND_CHECK, State.END}, timeout_s)
            self.camera.show_nothing()
        unsubscribe()
        self.face_paths.append(face_path([*snaps, snap]))  # listeners may run after wait_state returns
        if snap.state is State.SECOND_CHECK:
            if on_state:
                on_state(State.SECOND_CHECK)
            j.type(account_digits or c.account_digits)
            j.type(mobile_digits or c.mobile_digits)
            snap = j.wait_state({State.AMOUNT, State.END}, timeout_s)
        if snap.state is State.AMOUNT:
            if on_state:
                on_state(State.AMOUNT)
            j.type(str(amount))
            snap = j.wait_state({State.PRESENT, State.END}, timeout_s)
        if snap.state is State.PRESENT and take:
            self.take_cash()
        self.camera.show_nothing()
        return j.wait_records(done + 1, timeout_s + self.opt.journey.retract_timeout_ms / 1000)[done]

    def take_cash(self, timeout_s: float = 20.0) -> None:
        """The customer takes the notes as soon as the shutter is open."""
        assert self.board is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.board.mech.take():
                return
            time.sleep(0.01)

    # ----- looking at the bank ----------------------------------------------------------------------
    def ledger(self, txid: str) -> list[tuple[str, str, int]]:
        """The bank's journal entries of a transaction: (kind, ledger account, amount)."""

        def fn(cur: Cursor) -> list[tuple[str, str, int]]:
            sql = "SELECT kind, ledger_account, amount FROM journal WHERE txid = ? ORDER BY id"
            rows = cur.q(sql, [txid])
            return [(str(k), str(a), int(v)) for k, a, v in rows]

        return self._bank_query(fn)

    def txn_state(self, txid: str) -> str:
        def fn(cur: Cursor) -> str:
            rows = cur.q("SELECT state FROM txns WHERE txid = ?", [txid])
            return str(rows[0][0]) if rows else ""

        return self._bank_query(fn)

    def wait_txn_state(self, txid: str, states: set[str], timeout_s: float = 10.0) -> str:
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            state = self.txn_state(txid)
            if state in states:
                return state
            time.sleep(0.05)
        return state

    def _bank_query(self, fn: Callable[[Cursor], Any]) -> Any:
        db = open_database(self.db_url)
        try:
            return db.run(fn)
        finally:
            db.close()

    # ----- stop -------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop everything this stack started, newest first; each part by its own handle or pid."""
        steps: list[tuple[str, Callable[[], None]]] = []
        if self.screen is not None:
            steps.append(("screen", self.screen.stop))
        if self.journey is not None:
            steps.append(("journey", self.journey.stop))
        if self.link is not None:
            steps.append(("bank link", self.link.stop))
        for p in reversed(self.procs):
            steps.append((p.name, lambda p=p: _terminate(p.popen)))
        if self.dispenser is not None:
            steps.append(("dispenser link", self.dispenser.close))
        if self.board is not None:
            steps.append(("board", self.board.stop))
        if self.broker is not None:
            steps.append(("broker", self.broker.stop))
        for name, fn in steps:
            try:
                fn()
            except Exception as exc:
                self.say(f"stopping {name}: {exc}")
        self.procs.clear()

    def __enter__(self) -> LocalStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _terminate(popen: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


# ----- the demo -------------------------------------------------------------------------------------


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:7.1f} ms"


def _summary(stack: LocalStack, rec: JourneyRecord, title: str, face: str = "") -> list[str]:
    t = rec.timings
    notes = notes_text(list(rec.notes)) if rec.notes else "none"
    lines = [
        f"== {title} ==",
        f"outcome: {outcome_words(rec.outcome, rec.reason)}",
        f"amount {rec.amount} yuan; notes picked {notes}; presented {rec.presented}, "
        f"retracted {rec.retracted}",
    ]
    if face:
        lines.append(f"face: {face}")
    if rec.txid:
        state = stack.wait_txn_state(rec.txid, {"debited", "reversed"})
        lines.append(f"txid {rec.txid}; bank ledger: {state}")
        lines += [f"   {kind:8s} {acct:22s} {amt:+6d}" for kind, acct, amt in stack.ledger(rec.txid)]
    lines += [
        "timings (machine time, the person's own time excluded):",
        f"   QR decode        {_fmt_ms(t.get('qr_decode_ms'))}",
        f"   token check      {_fmt_ms(t.get('token_check_ms'))}",
        f"   face + liveness  {_fmt_ms(t.get('face_ms'))}",
        f"   MCU nonce        {_fmt_ms(t.get('nonce_ms'))}",
        f"   bank authorize   {_fmt_ms(t.get('authorize_ms'))}",
        f"   QR in view -> bank approval: {_fmt_ms(t.get('machine_qr_to_approval_ms'))} "
        f"(person: {_fmt_ms(t.get('person_ms'))}; wall {_fmt_ms(t.get('wall_qr_to_approval_ms'))})",
        f"   dispense {_fmt_ms(t.get('dispense_ms'))}, present {_fmt_ms(t.get('present_ms'))}",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Start everything, walk a withdrawal (and the chosen failure), print a summary; Ctrl-C stops all."""
    parser = argparse.ArgumentParser(prog="./atm demo", description=__doc__)
    parser.add_argument("--retract", action="store_true", help="the customer does not take the cash")
    parser.add_argument("--attack", action="store_true", help="a presentation attack (photo) at the camera")
    parser.add_argument("--limit-breach", action="store_true", help="ask for more than the daily limit")
    parser.add_argument("--abuse-burst", action="store_true", help="a script hammering one customer's tokens")
    parser.add_argument("--stay", action="store_true", help="keep running after the walk-through (Ctrl-C)")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where logs and databases go (new or empty)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the workdir (logs, databases) afterwards")
    parser.add_argument(
        "--password-file",
        type=Path,
        default=None,
        help=f"the console operator's password (first line); else ${PASSWORD_ENV}, else a random one",
    )
    parser.add_argument(
        "--faces",
        type=Path,
        default=None,
        help="<person>/<photo> folders to pick the customer from (dev set)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    stop = threading.Event()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # the with-blocks below stop everything on the way out

    signal.signal(signal.SIGTERM, on_term)
    try:
        password = _console_password(args.password_file)
        with Workdir(args.workdir, args.keep) as workdir:
            retract_ms = 5000 if args.retract else 30000
            opts = StackOptions(
                journey=JourneyConfig.model_validate(
                    {"retract_timeout_ms": retract_ms, "timeouts": {"outcome_s": 1.0}}
                ),
                screen=True,
                console=True,
                console_password=password,
                faces=args.faces,
            )
            kept = " (kept afterwards: --keep)" if args.keep else " (removed afterwards; --keep keeps it)"
            print(f"starting the local ATM in {workdir}{kept} ...", flush=True)
            _log_to(workdir / "host.log")
            with LocalStack(workdir, opts) as stack:
                return _walk(stack, args, stop)
    except KeyboardInterrupt:
        print("\ninterrupted: everything the demo started is stopped")
        return 130
    except VisionError as exc:
        print(f"error: {exc} (./atm models fetches and checks the models)", file=sys.stderr)
        return 2
    except (DemoError, MsgError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _log_to(path: Path) -> None:
    """The host's log lines (link, journey, bank link) go to a file; only errors reach the terminal."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    errors = logging.StreamHandler()
    errors.setLevel(logging.ERROR)
    errors.setFormatter(logging.Formatter(f"%(name)s: %(message)s (more in {path.name})"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    root.addHandler(errors)


def _console_password(path: Path | None) -> str:
    """The console operator's password from --password-file or the environment ('' = make one)."""
    if path is None:
        return os.environ.get(PASSWORD_ENV, "")
    try:
        first = (path.read_text(encoding="utf-8").splitlines() or [""])[0]
    except OSError as exc:
        raise DemoError(f"password file {path}: {exc.strerror or exc}") from exc
    if not first:
        raise DemoError(f"password file {path} is empty")
    return first


def _walk(stack: LocalStack, args: argparse.Namespace, stop: threading.Event) -> int:
    assert stack.board is not None and stack.client is not None and stack.journey is not None
    up = ", ".join(f"{k} {v:.1f} s" for k, v in stack.startup_s.items())
    print(f"up: {up}")
    print(f"  broker    mqtt://127.0.0.1:{stack.broker.port if stack.broker else 0}")
    print(f"  board     real firmware in MicroPython, UART {stack.board.port}")
    print(f"            cassettes loaded: {notes_text(stack.board.mech.cassettes)}")
    if stack.screen is not None:
        print(f"  screen    {stack.screen.url}  (open it in a browser)")
    print(f"  console   {stack.console_url or 'not available'}")
    if stack.console_password:
        shown = "(your password)" if stack.opt.console_password else stack.console_password
        print(f"            sign in as operator / {shown} (signed remote commands enabled)")
    c = stack.customers[0]
    before = list(stack.board.mech.cassettes)
    if stack.pick is not None:
        p = stack.pick
        print(
            f"customer's face: {p.person} from {p.enrol_photo.parent.parent}: the bank enrolled "
            f"{p.enrol_photo.name}, at the ATM {p.atm_photo.name} (match {p.score:.3f}); a live person "
            f"who does the active challenge if the ATM asks"
        )
    print(
        f"customer {c.customer_id}: shows the QR token on the phone, faces the camera at 50 cm, types the "
        f"last 4 digits of the account number ({c.account_digits}) and of the mobile number "
        f"({c.mobile_digits}) as the second check, and asks for 500 yuan"
    )
    rec = stack.withdraw(c, 500, take=not args.retract)
    paths = [stack.face_paths[-1]]
    # A customer refused after a challenge tries again (a new random challenge), as a real one would.
    while rec.outcome == "attack" and paths[-1].endswith("not passed") and len(paths) < MAX_ATTEMPTS:
        print(f"face: {paths[-1]}: the ATM refused; the customer tries again", flush=True)
        rec = stack.withdraw(c, 500, take=not args.retract)
        paths.append(stack.face_paths[-1])
    face = paths[0] if len(paths) == 1 else "; ".join(f"attempt {i + 1}: {x}" for i, x in enumerate(paths))
    lines = _summary(stack, rec, "withdrawal" + (" (not taken: retracted)" if args.retract else ""), face)
    snap = stack.board.mech.snapshot()
    lines.append(
        f"board: cassettes {notes_text(before)} before, {notes_text(list(snap['cassettes']))} after; "
        f"the customer holds {snap['taken']} notes; retract bin {snap['retract_bin']}"
    )
    ok = rec.outcome == ("retracted" if args.retract else "paid")
    if args.attack:
        rec2 = stack.withdraw(stack.customers[1], 500, face=stack.attack_face)
        lines += _summary(stack, rec2, "presentation attack (a photo at the camera)", stack.face_paths[-1])
        ok = ok and rec2.outcome == "attack"
    if args.limit_breach:
        c3 = stack.customers[2]
        gap = float(stack.opt.bank_config.get("abuse", {}).get("min_interval_s", 10.0))
        first = stack.withdraw(c3, 1000)
        print(f"limit breach: waiting out the bank's {gap:g} s minimum interval between attempts", flush=True)
        time.sleep(gap)
        second = stack.withdraw(c3, 1000)
        time.sleep(gap)
        third = stack.withdraw(c3, 500)
        title = f"limit breach: 1000 ({first.outcome}) + 1000 ({second.outcome}) + 500"
        lines += _summary(stack, third, title)
        ok = ok and third.outcome == "limit"
    if args.abuse_burst:
        lines += _abuse(stack)
    print("\n".join(lines), flush=True)
    if args.stay:
        print("running; Ctrl-C stops everything")
        while not stop.wait(0.5):
            pass
    return 0 if ok else 1


def _abuse(stack: LocalStack) -> list[str]:
    """A script replaying fresh tokens of one customer as fast as it can (the 1-won lesson)."""
    c = stack.customers[3]
    lines = [
        "== abuse burst: a script tries 6 fresh tokens of one customer at once, all with wrong account "
        "digits (0000) ==",
    ]
    reasons: list[str] = []
    for i in range(6):
        rec = stack.withdraw(c, 100, account_digits="0000")
        reasons.append(rec.reason)
        lines.append(f"   attempt {i + 1}: {outcome_words(rec.outcome, rec.reason)}")
    failed = reasons.count("SECOND_CHECK_FAILED")
    refused = len(reasons) - failed
    lines.append(
        f"   so: {failed} attempt(s) reached the identity check and failed it; {refused} were refused by the "
        "bank's abuse rules before any check; no cash moved"
    )
    return lines


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
