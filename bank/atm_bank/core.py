"""The bank's decision core: one rule set for every branch; authorize atomically, answer once per request."""

import hmac
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from atm_msg import qrtoken
from atm_msg.denominate import denominate, representable
from atm_msg.errors import DenominationError, TokenError
from atm_msg.reasons import DISPLAY, Reason
from atm_msg.schemas import AuthRequest, AuthResponse, ConsoleAlarm
from atm_wire.auth import sign_dispense  # pyright: ignore[reportUnknownVariableType]
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import abuse, ledger, snapshot
from .config import BankConfig
from .db import Cursor, Database
from .face import cosine
from .registry import Atm, Template

Clock = Callable[[], float]

# Reasons that are failed identity checks: they count towards the escalating lockout.
_IDENTITY_FAILURES = {Reason.FACE_MISMATCH, Reason.LIVENESS_FAILED, Reason.SECOND_CHECK_FAILED}


@dataclass
class Decision:
    """The answer, the alarms to publish, and whether it was decided now (False: a stored replay)."""

    response: AuthResponse
    alarms: list[ConsoleAlarm] = field(default_factory=list[ConsoleAlarm])
    fresh: bool = True
    response_json: str = ""  # the response as stored and sent (serialised once)


@dataclass(frozen=True)
class _TokenCheck:
    """The QR token as the ATM sent it: what it claims, and whether its signature and expiry hold.

    Computed before the transaction (a pure function of the text, the keys and the time), so the
    public-key work runs in parallel across workers instead of inside the database's write lock.
    """

    claimed: qrtoken.WithdrawalToken | None  # None: not even a token
    verified: qrtoken.WithdrawalToken | None  # None: forged, tampered or expired (see reason)
    reason: Reason | None


@dataclass
class _Ctx:
    """One authorization in progress."""

    cur: Cursor
    req: AuthRequest
    topic_atm: str
    now: float
    now_ms: int
    day: int
    token: _TokenCheck
    snap: snapshot.Snapshot
    alarms: list[ConsoleAlarm] = field(default_factory=list[ConsoleAlarm])
    # Attempts to count, written once at the end of the decision (nothing in it reads them back).
    attempts: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])


class _DeclineError(Exception):
    def __init__(self, reason: Reason, retry_after_s: int | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.retry_after_s = retry_after_s


def business_day(now_ms: int, utc_offset_hours: int) -> int:
    """Day number of the bank's business day (UTC+8 by default)."""
    return (now_ms // 1000 + utc_offset_hours * 3600) // 86400


def store_answer(cur: Cursor, request_id: str, atm_id: str, response_json: str, now_ms: int) -> None:
    """Record the answer to a request_id: a redelivered request gets it again and nothing more."""
    cur.w(
        "INSERT INTO requests (request_id, atm_id, response, at_ms) VALUES (?,?,?,?)",
        (request_id, atm_id, response_json, now_ms),
    )


def decline(request_id: str, reason: Reason, retry_after_s: int | None = None) -> AuthResponse:
    """A decline answer with the display text for the reason."""
    return AuthResponse(
        request_id=request_id,
        decision="decline",
        reason=reason,
        message=DISPLAY[reason],
        retry_after_s=retry_after_s,
    )


class Bank:
    """Authorization and settlement over one database connection (one per worker thread/process)."""

    def __init__(
        self, db: Database, cfg: BankConfig, token_keys: dict[int, Ed25519PublicKey], clock: Clock = time.time
    ) -> None:
        cfg.require_thresholds()  # fail closed before the first request, not by declining every one
        self.db = db
        self.cfg = cfg
        self.token_keys = token_keys
        self.clock = clock

    # ----- authorization --------------------------------------------------------------------------
    def authorize(self, req: AuthRequest, topic_atm: str) -> Decision:
        """Decide one request atomically; a repeated request_id gets the stored answer, nothing more."""
        return self.db.run(self.decider(req, topic_atm), self.locks_for(req, topic_atm))

    def authorize_many(self, items: Sequence[tuple[AuthRequest, str]]) -> list[Decision | Exception]:
        """Decide several requests in one transaction (group commit), each atomic in its own savepoint.

        Nothing is answered before the commit: the caller publishes the decisions only after this returns.
        """
        locks = [name for req, atm in items for name in self.locks_for(req, atm)]
        return self.db.run_batch(self.deciders(items), locks)

    @staticmethod
    def locks_for(req: AuthRequest, topic_atm: str) -> list[str]:
        """The subjects a decision reads and changes: the ATM, and the customer and account its token names.

        Read from the token before its signature is checked: a forged token at worst makes its request
        queue behind the real customer's; every row the decision writes belongs to one of these subjects
        (the request and attempt rows to the ATM; nonces, limits, lockouts, reservations to the customer
        and account, which a token can name only once its signature has been verified).
        """
        names = [f"atm:{topic_atm}"]
        try:
            claimed = qrtoken.decode(req.qr_token)[0]
        except TokenError:
            return names
        return [*names, f"customer:{claimed.customer_id}", f"account:{claimed.account_id}"]

    def decider(self, req: AuthRequest, topic_atm: str) -> "_Decider":
        """The body of one authorization, to run inside a transaction (the token is checked now, outside)."""
        return _Decider(self, req, topic_atm, prefetch=False)

    def deciders(self, items: Sequence[tuple[AuthRequest, str]]) -> list["_Decider"]:
        """Deciders for one batch, in order; those whose subjects no earlier item of the batch shares
        send their snapshot read ahead (nothing an earlier item writes can change what they read)."""
        seen: set[str] = set()
        out: list[_Decider] = []
        for req, atm in items:
            subjects = set(self.locks_for(req, atm))
            out.append(_Decider(self, req, atm, prefetch=not subjects & seen))
            seen |= subjects
        return out

    def _decide_one(self, d: "_Decider", cur: Cursor, snap: snapshot.Snapshot) -> Decision:
        req, topic_atm = d.req, d.topic_atm
        if snap.stored_response is not None:
            stored = snap.stored_response
            return Decision(AuthResponse.model_validate_json(stored), fresh=False, response_json=stored)
        ctx = _Ctx(cur, req, topic_atm, d.now, d.now_ms, d.day, d.token, snap)
        try:
            response = self._decide(ctx)
        except _DeclineError as e:
            response = decline(req.request_id, e.reason, e.retry_after_s)
        if ctx.attempts:
            abuse.count_attempts(cur, ctx.attempts, d.day, d.now_ms)
        text = response.model_dump_json()
        store_answer(cur, req.request_id, topic_atm, text, d.now_ms)
        return Decision(response, ctx.alarms, response_json=text)

    def _decide(self, ctx: _Ctx) -> AuthResponse:
        """The rules, in order, on the snapshot; every write is blind (its new value is known here)."""
        cfg, cur, req, snap = self.cfg, ctx.cur, ctx.req, ctx.snap
        if abs(ctx.now_ms - req.ts_ms) > cfg.tokens.request_ttl_s * 1000:
            raise _DeclineError(Reason.STALE_REQUEST)
        atm = snap.atm
        if atm is None:
            raise _DeclineError(Reason.UNKNOWN_ATM)
        if req.atm_id != ctx.topic_atm or not hmac.compare_digest(req.device_id, atm.device_id.hex()):
            raise _DeclineError(Reason.WRONG_ATM)
        ctx.attempts.append(("atm", ctx.topic_atm))
        if snap.atm_attempts_today + 1 > cfg.abuse.max_attempts_atm_day:
            self._alarm(ctx, "attempts_exceeded", "atm", ctx.topic_atm)
            raise _DeclineError(Reason.ATTEMPTS_EXCEEDED)
        if ctx.token.claimed is None:
            self._invalid_token(ctx)
            raise _DeclineError(Reason.TOKEN_FORGED)
        verified = ctx.token.verified
        if verified is not None and snap.nonce_used:
            # A used token again (a photographed QR): refused before anything of the customer's is
            # counted or checked, so a replay cannot lock the customer out; it counts against the ATM.
            self._invalid_token(ctx)
            self._alarm(
                ctx,
                "token_replayed",
                "customer",
                str(verified.customer_id),
                f"used token replayed at {ctx.topic_atm} (request {req.request_id})",
            )
            raise _DeclineError(Reason.TOKEN_REPLAYED)
        self._precheck(ctx)
        token = ctx.token.verified
        if token is None:
            self._invalid_token(ctx)
            raise _DeclineError(ctx.token.reason or Reason.TOKEN_FORGED)
        customer, account = str(token.customer_id), str(token.account_id)
        self._check_rate(ctx, customer, account)
        # Single use: the nonce is spent by the first attempt that reaches this point, whatever its outcome.
        # A plain INSERT: should the snapshot ever be wrong, the unique index fails the transaction closed.
        cur.w(
            "INSERT INTO used_nonces (nonce, request_id, at_ms) VALUES (?,?,?)",
            (token.nonce.hex(), req.request_id, ctx.now_ms),
        )
        if snap.account is None:
            raise _DeclineError(Reason.UNKNOWN_ACCOUNT)
        account_number, mobile = snap.account
        reason = self._verify_identity(req, account_number, mobile, snap.template)
        if reason is not None:
            if reason in _IDENTITY_FAILURES:
                for scope, subject in (("customer", customer), ("account", account)):
                    until = abuse.register_failure(cur, cfg.abuse, scope, subject, ctx.now_ms)
                    if until:
                        self._alarm(ctx, "lockout", scope, subject, f"locked until {until} ms")
            raise _DeclineError(reason)
        for scope, subject in (("customer", customer), ("account", account)):
            if snap.failures.get(scope):  # nothing to reset when there is no failure on record
                abuse.register_success(cur, scope, subject)
        notes = self._check_amount(ctx, atm, token)
        return self._approve(ctx, atm, token, notes)

    def _check_token(self, text: str, now: float) -> _TokenCheck:
        """Decode the token and check its signature and expiry (pure: no database)."""
        try:
            decoded = qrtoken.decode(text)
        except TokenError:
            return _TokenCheck(None, None, Reason.TOKEN_FORGED)
        try:
            token = qrtoken.check(*decoded, self.token_keys, now, self.cfg.tokens.clock_skew_s)
        except TokenError as exc:
            reason = Reason.TOKEN_EXPIRED if exc.reason == qrtoken.EXPIRED else Reason.TOKEN_FORGED
            return _TokenCheck(decoded[0], None, reason)
        return _TokenCheck(decoded[0], token, None)

    def _precheck(self, ctx: _Ctx) -> None:
        """Before the token's verdict is used: is the customer the token names locked or too quick?

        Read-only for the customer (an unverified token changes nothing of theirs); a too-quick attempt
        is counted against the ATM it came from, whose identity the broker vouches for. A locked or
        hurried customer is told so whatever the token's verdict.
        """
        snap, now_ms = ctx.snap, ctx.now_ms
        for scope in ("customer", "account"):
            until = snap.locked_until.get(scope, 0)
            if until > now_ms:
                raise _DeclineError(Reason.LOCKED_OUT, (until - now_ms + 999) // 1000)
        if snap.customer_attempts_today >= self.cfg.abuse.max_attempts_customer_day:
            verified = ctx.token.verified
            if verified is not None:  # the alarm names only a customer whose own token this is
                self._alarm(ctx, "attempts_exceeded", "customer", str(verified.customer_id))
            raise _DeclineError(Reason.ATTEMPTS_EXCEEDED)
        last = snap.customer_last_attempt_ms
        min_ms = self.cfg.abuse.min_interval_s * 1000
        if last is not None and now_ms - last < min_ms:
            abuse.note_rate_violation(ctx.cur, "atm", ctx.topic_atm, ctx.day)
            if snap.atm_rate_violations_today + 1 >= self.cfg.abuse.alarm_rate_violations:
                self._alarm(ctx, "rate_violations", "atm", ctx.topic_atm)
            raise _DeclineError(Reason.TOO_FREQUENT, int(min_ms - (now_ms - last) + 999) // 1000)

    def _check_rate(self, ctx: _Ctx, customer: str, account: str) -> None:
        """Count the verified customer's and account's attempts (lockouts and interval: _precheck)."""
        cfg, snap = self.cfg.abuse, ctx.snap
        ctx.attempts += [("customer", customer), ("account", account)]
        if snap.customer_attempts_today + 1 > cfg.max_attempts_customer_day:
            self._alarm(ctx, "attempts_exceeded", "customer", customer)
            raise _DeclineError(Reason.ATTEMPTS_EXCEEDED)
        if snap.account_attempts_today + 1 > cfg.max_attempts_account_day:
            self._alarm(ctx, "attempts_exceeded", "account", account)
            raise _DeclineError(Reason.ATTEMPTS_EXCEEDED)

    def _verify_identity(
        self, req: AuthRequest, account_number: str, mobile: str, template: Template | None
    ) -> Reason | None:
        if template is None:
            return Reason.NOT_ENROLLED
        probe = req.face
        if probe.model_id != template.model_id or probe.template_version != template.template_version:
            return Reason.FACE_MODEL_MISMATCH
        threshold = self.cfg.threshold_for(probe.model_id)
        if threshold is None:
            return Reason.FACE_MODEL_MISMATCH  # fail closed: no calibrated threshold for this model
        if probe.liveness < self.cfg.face.min_liveness:
            return Reason.LIVENESS_FAILED
        if probe.quality < self.cfg.face.min_quality:
            return Reason.FACE_QUALITY_LOW
        face_ok = cosine(probe.embedding, template.embedding) >= threshold
        n = self.cfg.tokens.second_check_digits
        account_ok = hmac.compare_digest(req.account_digits, account_number[-n:])
        mobile_ok = hmac.compare_digest(req.mobile_digits, mobile[-n:])
        if not face_ok:
            return Reason.FACE_MISMATCH
        if not (account_ok and mobile_ok):
            return Reason.SECOND_CHECK_FAILED
        return None

    def _check_amount(self, ctx: _Ctx, atm: Atm, token: qrtoken.WithdrawalToken) -> list[int]:
        limits, req = self.cfg.limits, ctx.req
        amount = req.amount_yuan
        if token.amount_yuan and token.amount_yuan != amount:
            raise _DeclineError(Reason.AMOUNT_MISMATCH)
        if amount <= 0 or not representable(amount, atm.denominations):
            raise _DeclineError(Reason.AMOUNT_INVALID)
        if amount > limits.per_withdrawal_yuan:
            raise _DeclineError(Reason.LIMIT_PER_WITHDRAWAL)
        # Reserved and suspect money counts against the limits until it is settled (snapshot.py).
        customer_today, account_total = ctx.snap.customer_used_today, ctx.snap.account_used_total
        if customer_today + amount > limits.per_customer_day_yuan:
            raise _DeclineError(Reason.LIMIT_DAILY)
        if account_total + amount > limits.per_account_total_yuan:
            raise _DeclineError(Reason.LIMIT_ACCOUNT_TOTAL)
        if [c.denomination for c in req.cassettes] != atm.denominations:
            raise _DeclineError(Reason.CANNOT_DISPENSE)
        counts = [c.count if c.status != "missing" else 0 for c in req.cassettes]
        try:
            # The presenter capacity is the MCU's (its hello, reported in the request): never approve a
            # bundle the dispenser would refuse after spending the nonce.
            return denominate(amount, atm.denominations, counts, req.max_notes)
        except DenominationError as exc:
            raise _DeclineError(Reason.CANNOT_DISPENSE) from exc

    def _approve(self, ctx: _Ctx, atm: Atm, token: qrtoken.WithdrawalToken, notes: list[int]) -> AuthResponse:
        req = ctx.req
        txid = os.urandom(16)
        dispense: bytes = sign_dispense(atm.key, atm.device_id, bytes.fromhex(req.command_nonce), txid, notes)
        ctx.cur.w(
            "INSERT INTO txns (txid, request_id, atm_id, customer_id, account_id, day, amount, notes, "
            "command_nonce, state, debited, created_ms) VALUES (?,?,?,?,?,?,?,?,?,'reserved',0,?)",
            (
                txid.hex(),
                req.request_id,
                atm.atm_id,
                token.customer_id,
                token.account_id,
                ctx.day,
                req.amount_yuan,
                json.dumps(notes),
                req.command_nonce,
                ctx.now_ms,
            ),
        )
        ledger.reserve(ctx.cur, txid.hex(), token.account_id, req.amount_yuan, ctx.now_ms)
        return AuthResponse(
            request_id=req.request_id,
            decision="approve",
            message="Please take your cash.",
            txid=txid.hex(),
            amount_yuan=req.amount_yuan,
            notes=notes,
            dispense_token=dispense.hex(),
        )

    def _invalid_token(self, ctx: _Ctx) -> None:
        """Count an invalid token against the ATM it came from; alarm at the configured daily count."""
        n = abuse.note_invalid_token(ctx.cur, ctx.topic_atm, ctx.day, ctx.now_ms)
        if n >= self.cfg.abuse.alarm_invalid_tokens_atm:
            self._alarm(ctx, "invalid_tokens", "atm", ctx.topic_atm, f"{n} invalid QR tokens today")

    def _alarm(self, ctx: _Ctx, kind: str, scope: str, subject: str, detail: str = "") -> None:
        alarm = abuse.raise_alarm(
            ctx.cur,
            kind=kind,
            scope=scope,
            subject=subject,
            day=ctx.day,
            detail=detail or f"{kind} for {scope} {subject}",
            now_ms=ctx.now_ms,
        )
        if alarm is not None:
            ctx.alarms.append(alarm)


class _Decider:
    """One authorization's body, callable inside a transaction; the token was checked when it was made.

    `prepare(cur)` (called by db._batch before the batch's first item runs) sends the snapshot read
    ahead when `prefetch` is set; the result is used only by a call on that same cursor, so a batch run
    again (the savepoint pass) reads afresh.
    """

    def __init__(self, bank: Bank, req: AuthRequest, topic_atm: str, prefetch: bool) -> None:
        self.bank, self.req, self.topic_atm, self.prefetch = bank, req, topic_atm, prefetch
        # The signature is checked here, outside the lock (public-key work in parallel); the decision's
        # clock is read again under the lock (_tick): a decider that waited for the lock behind a later
        # attempt of the same customer must not decide in that attempt's past (TOO_FREQUENT).
        self.now = bank.clock()
        self.now_ms = int(self.now * 1000)
        self.token = bank._check_token(req.qr_token, self.now)  # pyright: ignore[reportPrivateUsage]
        self.day = business_day(self.now_ms, bank.cfg.limits.day_utc_offset_hours)
        self._ticked: Cursor | None = None
        claimed = self.token.claimed
        self.customer_id, self.account_id = (claimed.customer_id, claimed.account_id) if claimed else (-1, -1)
        self.nonce_hex = claimed.nonce.hex() if claimed else ""
        self._early: tuple[Cursor, Callable[[], snapshot.Snapshot]] | None = None

    def _tick(self, cur: Cursor) -> None:
        """Read the decision clock (inside the transaction, under the subjects' locks)."""
        now = max(self.bank.clock(), self.now)
        if now != self.now:
            self.now, self.now_ms = now, int(now * 1000)
            self.day = business_day(self.now_ms, self.bank.cfg.limits.day_utc_offset_hours)
            verified = self.token.verified
            skew = self.bank.cfg.tokens.clock_skew_s
            if verified is not None and now > verified.expires_at + skew:  # expired while it waited
                self.token = _TokenCheck(self.token.claimed, None, Reason.TOKEN_EXPIRED)
        self._ticked = cur

    def prepare(self, cur: Cursor) -> None:
        self._tick(cur)
        if self.prefetch:
            self._early = (cur, self._read(cur))

    def __call__(self, cur: Cursor) -> Decision:
        if self._ticked is not cur:
            self._tick(cur)
        self._ticked = None  # a savepoint rerun reads the clock again
        early, self._early = self._early, None
        snap = early[1]() if early is not None and early[0] is cur else self._read(cur)()
        return self.bank._decide_one(self, cur, snap)  # pyright: ignore[reportPrivateUsage]

    def _read(self, cur: Cursor) -> Callable[[], snapshot.Snapshot]:
        return snapshot.read_later(
            cur,
            request_id=self.req.request_id,
            atm_id=self.topic_atm,
            day=self.day,
            customer_id=self.customer_id,
            account_id=self.account_id,
            nonce_hex=self.nonce_hex,
        )
