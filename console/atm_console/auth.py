"""Operator authentication: scrypt password hashes, login throttling, session cookies and CSRF tokens."""

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass, field

from .errors import AuthError, NotSignedInError, SessionExpiredError
from .store import Store

# scrypt cost: N=2^15, r=8, p=1 needs 32 MiB and ~0.1 s per guess here; stored per hash, so raising
# it later only needs a re-hash at the next login.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
MAX_FAILURES = 5  # failed logins per user before a lock-out (the 1-won lesson: limit attempts)
LOCKOUT_S = 300.0
ABSOLUTE_SESSION_S = 12 * 3600.0
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
MIN_PASSWORD = 10


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """`scrypt$n$r$p$salt$hash` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(dk)}"


def check_password(password: str, stored: str) -> bool:
    """Constant-time comparison against a stored scrypt hash."""
    try:
        alg, n, r, p, salt, want = stored.split("$")
        if alg != "scrypt":
            return False
        dk = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=256 * 1024 * 1024,
            dklen=32,
        )
    except ValueError:
        return False
    return hmac.compare_digest(dk, base64.b64decode(want))


# A hash of a random password: unknown users cost the same scrypt as known ones (no user enumeration).
_DUMMY = hash_password(secrets.token_hex(16))


@dataclass
class Session:
    """A logged-in operator."""

    username: str
    csrf: str
    created: float
    last_seen: float


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0
    stamps: list[float] = field(default_factory=list[float])


class Auth:
    """Operators (in the store), sessions (in memory: a restart logs everyone out)."""

    def __init__(self, store: Store, idle_s: float = 1800.0) -> None:
        self.store = store
        self.idle_s = idle_s
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def add_operator(self, username: str, password: str) -> None:
        if not USERNAME_RE.match(username):
            raise AuthError("username: 1-32 letters, digits, '_', '.', '-'")
        if len(password) < MIN_PASSWORD:
            raise AuthError(f"password: at least {MIN_PASSWORD} characters")
        self.store.put_operator(username, hash_password(password))

    def login(self, username: str, password: str, now: float | None = None) -> tuple[str, Session]:
        """Check the password; returns (session token, session). Raises AuthError (audited by caller)."""
        t = time.time() if now is None else now
        with self._lock:
            f = self._failures.setdefault(username, _Failures())
            if f.locked_until > t:
                raise AuthError("too many failed logins; try again later")
        stored = self.store.operator_hash(username) if USERNAME_RE.match(username) else None
        ok = check_password(password, stored if stored is not None else _DUMMY) and stored is not None
        with self._lock:
            if not ok:
                f.stamps = [s for s in f.stamps if t - s < LOCKOUT_S] + [t]
                if len(f.stamps) >= MAX_FAILURES:
                    f.locked_until = t + LOCKOUT_S
                    f.stamps = []
                raise AuthError("wrong username or password")
            self._failures.pop(username, None)
            token = secrets.token_urlsafe(32)
            session = Session(username, secrets.token_urlsafe(32), t, t)
            self._sessions[token] = session
        return token, session

    def session(self, token: str | None, now: float | None = None, *, touch: bool = True) -> Session:
        """The live session of a cookie value; refreshes its idle timer unless touch is False."""
        t = time.time() if now is None else now
        if not token:
            raise NotSignedInError("not logged in")
        with self._lock:
            s = self._sessions.get(token)
            if s is None:
                raise NotSignedInError("not logged in")
            if t - s.last_seen > self.idle_s or t - s.created > ABSOLUTE_SESSION_S:
                del self._sessions[token]
                raise SessionExpiredError("session expired: sign in again")
            if touch:
                s.last_seen = t
            return s

    def check_csrf(self, session: Session, header: str | None) -> None:
        if not header or not hmac.compare_digest(session.csrf, header):
            raise AuthError("CSRF token missing or wrong")

    def logout(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(token, None)
