"""End-to-end security on the dispenser: the device key, command nonces, token checks, signed reports.

- The 32-byte device key is provisioned once (PROVISION) and can never be read back or replaced.
- A command nonce is epoch (u32, raised in the journal at every boot before any nonce is issued) | counter
  (u32) | 8 random bytes, so it never repeats, even across power loss. One nonce is outstanding at a
  time; it is consumed by the first token presented against it, valid or not, and expires.
- Tokens are checked here, on the MCU, with a constant-time MAC compare. Repeated bad tokens lock
  authorised commands for a while (fraudAttempt).
"""

import os
import struct
import time

from atm_wire import auth
from atm_wire import messages as m
from micropython import const

NONCE_LIFETIME_MS = 180_000  # covers the bank round trip and a slow customer at the keypad
_FRAUD_THRESHOLD = const(5)  # consecutive bad tokens before the lock
_FRAUD_LOCK_MS = const(60_000)


class Security:
    def __init__(self, device_id, journal):
        self.device_id = device_id
        self._jr = journal
        self.key = journal.key
        if self.key is not None and len(self.key) != m.KEY_LEN:
            self.key = None
        self.epoch = journal.next_epoch()  # durable before any nonce is issued
        self._counter = 0
        self.nonce = None
        self._nonce_at = 0
        self.bad_tokens = 0
        self._locked_at = 0
        self.locked = False
        self.invalid_tokens = 0
        self.fraud_attempts = 0

    @property
    def provisioned(self):
        return self.key is not None

    def provision(self, key):
        if self.key is not None:
            return m.ALREADY_PROVISIONED
        if len(key) != m.KEY_LEN or key == bytes(m.KEY_LEN):
            return m.INVALID_DATA
        self._jr.set_key(bytes(key))
        self.key = bytes(key)
        return m.SUCCESS

    def new_nonce(self):
        self._counter += 1
        self.nonce = struct.pack("<II", self.epoch, self._counter) + os.urandom(8)
        self._nonce_at = time.ticks_ms()
        return self.nonce

    def nonce_valid(self):
        if self.nonce is None:
            return False
        if time.ticks_diff(time.ticks_ms(), self._nonce_at) > NONCE_LIFETIME_MS:
            self.nonce = None
            return False
        return True

    def _check_lock(self):
        if self.locked and time.ticks_diff(time.ticks_ms(), self._locked_at) > _FRAUD_LOCK_MS:
            self.locked = False
            self.bad_tokens = 0
        return self.locked

    def strike(self, code):
        """One bad attempt: counted, and towards the lock-out. Returns the code to answer with."""
        self.invalid_tokens += 1
        self.bad_tokens += 1
        if self.bad_tokens >= _FRAUD_THRESHOLD:
            self.locked = True
            self._locked_at = time.ticks_ms()
            self.fraud_attempts += 1
            return m.FRAUD_ATTEMPT
        return code

    def check_token(self, device_id, nonce, mac, mac_fn):
        """Common checks for a signed command; mac_fn(key) computes the expected MAC.

        Every token presented consumes the outstanding nonce, whatever its fate, and every failed
        check is a strike towards the lock-out (docs/threat-model.md, "Lock-out")."""
        if self.key is None:
            return m.NOT_PROVISIONED
        if self._check_lock():
            self.invalid_tokens += 1
            self.nonce = None
            return m.FRAUD_ATTEMPT
        expected_nonce = self.nonce
        live = expected_nonce is not None and self.nonce_valid()
        self.nonce = None  # one token per nonce, whatever its fate
        if device_id != self.device_id:
            return self.strike(m.INVALID_TOKEN)
        if not live or expected_nonce is None:
            return self.strike(m.NO_COMMAND_NONCE)
        if not auth.equal_ct(nonce, expected_nonce):
            return self.strike(m.INVALID_TOKEN_NONCE)
        if not auth.equal_ct(mac, mac_fn(self.key)):
            return self.strike(m.INVALID_TOKEN_HMAC)
        self.bad_tokens = 0
        return m.SUCCESS

    def sign_report(self, buf):
        """Fill the MAC of a report packed into buf (REPORT_FMT with a zero MAC)."""
        body_len = auth.REPORT_SIZE - m.MAC_LEN
        mac = auth.report_mac(self.key if self.key is not None else bytes(m.KEY_LEN), buf[:body_len])
        buf[body_len : auth.REPORT_SIZE] = mac
