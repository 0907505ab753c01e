"""The dispense transaction state machine: verify, pick, stack, present, take or retract, reconcile.

Every motion is preceded by its journal record and followed by its outcome record, so a power cut at
any instant leaves enough on the flash to account for every note exactly (see recover()).
"""

import struct
import time

import journal as j
import mech as mc
import micropython
from atm_wire import auth
from atm_wire import messages as m
from micropython import const

MAX_NOTES = 60  # presenter capacity: a bundle thicker than this jams the shutter
_PICK_RETRIES = const(3)  # failed picks in a row before a cassette is declared empty
_LOW_THRESHOLD = const(20)  # notes left in a cassette that raise a "low" threshold event
_RETRACT_TIMEOUT_DEFAULT = const(30_000)
_RETRACT_TIMEOUT_MIN = const(1_000)
_RETRACT_TIMEOUT_MAX = const(120_000)
_GUARD_POLL_MS = const(100)  # door and tamper switches: an alarm within 0.1 s is plenty, and costs two reads
_COUNT_BATCH = const(50)  # a count empties the stacker into the reject bin every this many notes
_QUIET_POLLS = const(20)  # sensor polls with nothing seen, on top of QUIET_MS, before the path is quiet
# Phases of the open transaction in which nothing has gone towards the customer: recovery runs every
# note of it into the reject bin, the stacker first (see _recover_moving).
_BINNED = (j.REC_BEGIN, j.REC_PICKED, j.REC_DIVERTED, j.REC_EMPTY, j.REC_STACKED, j.REC_REJECT)


class Dispenser:
    def __init__(self, mech, journal, security, emit, service, counters):
        self.mech = mech
        self.jr = journal
        self.sec = security
        self._emit = emit  # emit(event_name, *fields)
        self._service = service  # keep the link and the watchdog alive between motions
        self.c = counters
        self.state = m.STATE_IDLE
        self.fault = 0
        self.retract_timeout_ms = _RETRACT_TIMEOUT_DEFAULT
        self._presented_at = 0
        self._guard_at = 0
        self._guard = 0  # last seen door (bit 0) and tamper (bit 1) state
        self.unit_status = [m.UNIT_OK, m.UNIT_OK, m.UNIT_OK, m.UNIT_OK]
        self._report = bytearray(auth.REPORT_SIZE)
        self.recovered = None  # txid reconciled at boot, announced once the link is up
        self._moved = 0  # notes the last _path_to_stacker counted into the stacker

    # ----- helpers ---------------------------------------------------------------------------------
    def _safe(self, fault):
        """Any fault: motors off, shutter closed if nothing is in the presenter, state FAULT."""
        self.mech.all_off()
        self.fault = fault
        self.state = m.STATE_FAULT
        if not self.mech.presenter_has_notes() and not self.mech.shutter_closed():
            self.mech.close_shutter()

    def _update_units(self):
        for c in range(m.N_CASSETTES):
            n = self.jr.counts[c]
            old = self.unit_status[c]
            if self.jr.denoms[c] == 0:
                new = m.UNIT_MISSING  # no cassette configured in this slot
            else:
                new = m.UNIT_EMPTY if n == 0 else (m.UNIT_LOW if n <= _LOW_THRESHOLD else m.UNIT_OK)
            if new != old:
                self.unit_status[c] = new
                if new != m.UNIT_OK:
                    self._emit("cassette_threshold", c, new, n)

    def cassette_info(self):
        jr = self.jr
        d = jr.denoms
        n = jr.counts
        u = self.unit_status
        return (
            d[0],
            d[1],
            d[2],
            d[3],
            n[0],
            n[1],
            n[2],
            n[3],
            u[0],
            u[1],
            u[2],
            u[3],
            jr.reject_bin & 0xFFFF,
            jr.retract_bin & 0xFFFF,
        )

    def stacked_total(self):
        tx = self.jr.open_tx
        return 0 if tx is None else sum(tx.stacked)

    def _door_ok(self):
        """Motion only with the safe closed and the tamper loop whole (changes are reported by tick)."""
        return not (self.mech.door_open() or self.mech.tampered())

    def _finish(self, present_status, flags):
        self.jr.end(present_status, flags | m.REPORT_FLAG_FINAL)
        self.state = m.STATE_IDLE
        self.fault = 0
        self._update_units()
        self.jr.maybe_compact()

    # ----- commands --------------------------------------------------------------------------------
    def denominate(self, notes):
        if sum(notes) == 0 or sum(notes) > MAX_NOTES:
            return m.INVALID_DATA, 0
        amount = 0
        for c in range(m.N_CASSETTES):
            if notes[c] > self.jr.counts[c]:
                return m.NOT_ENOUGH_NOTES, 0
            amount += notes[c] * self.jr.denoms[c]
        return m.SUCCESS, amount

    def dispense(self, device_id, nonce, txid, notes, mac):
        """Returns (completion code, stacked[4], rejected[4], flags)."""
        zero = (0, 0, 0, 0)
        sec = self.sec
        prior = self.jr.find(txid)
        if prior is not None:
            # The host retried a transaction this device already ran: answer, never move a note. Only
            # the genuine token of that transaction gets the recorded answer; anything else is a strike.
            if sec.key is None:
                return m.NOT_PROVISIONED, zero, zero, 0
            genuine = auth.equal_ct(mac, auth.dispense_mac(sec.key, device_id, nonce, txid, notes))
            if genuine and device_id == sec.device_id and auth.equal_ct(prior.nonce, nonce):
                return m.SUCCESS, tuple(prior.stacked), tuple(prior.rejected_by), m.REPORT_FLAG_DUPLICATE
            if sec.nonce is not None and auth.equal_ct(sec.nonce, nonce):
                sec.nonce = None  # a token against the outstanding nonce consumes it, whatever its fate
            if genuine:
                sec.invalid_tokens += 1  # a bank-signed token reusing a finished txid: refused, counted
                return m.INVALID_TOKEN_NONCE, zero, zero, 0
            return sec.strike(m.INVALID_TOKEN_HMAC), zero, zero, 0
        if self.state != m.STATE_IDLE:
            return m.SEQUENCE_ERROR, zero, zero, 0
        if not self._door_ok():
            return m.DOOR_OPEN, zero, zero, 0
        code = sec.check_token(
            device_id, nonce, mac, lambda k: auth.dispense_mac(k, device_id, nonce, txid, notes)
        )
        if code != m.SUCCESS:
            return code, zero, zero, 0
        # The note counts are checked only after the token (its nonce is spent by now): a genuine token
        # the bank should never have signed is counted; one the cassettes cannot serve just fails.
        code, _ = self.denominate(notes)
        if code == m.INVALID_DATA:
            sec.invalid_tokens += 1
        if code != m.SUCCESS:
            return code, zero, zero, 0
        self.jr.begin(txid, nonce, notes)
        self.state = m.STATE_DISPENSING
        code = self._pick_all(notes)
        tx = self.jr.open_tx
        rejected = tuple(tx.rejected_by)
        if self.state == m.STATE_FAULT:
            self._emit(
                "incomplete_dispense", txid, tx.stacked[0], tx.stacked[1], tx.stacked[2], tx.stacked[3]
            )
            return code, tuple(tx.stacked), rejected, 0
        self.jr.stacked()
        self.c["dispenses"] += 1
        self.state = m.STATE_STACKED
        if code != m.SUCCESS:
            self._emit(
                "incomplete_dispense", txid, tx.stacked[0], tx.stacked[1], tx.stacked[2], tx.stacked[3]
            )
        self._update_units()
        return code, tuple(tx.stacked), rejected, 0

    def _pick_all(self, notes):
        """Pick note by note. Every pick is journalled while it waits at the escrow gate, before it
        moves on (one flash program per note): a single note as stacked, a double pick as rejected
        (marked again once it reached the reject bin). So the stacker never holds a note the journal
        has not booked, and the only notes no record names are those of the pick under way from
        tx.current_cassette(), which recovery counts on their way into the stacker."""
        tx = self.jr.open_tx
        jr = self.jr
        mech = self.mech
        result = m.SUCCESS
        for c in range(m.N_CASSETTES):
            fails = 0
            while tx.stacked[c] < notes[c]:
                self._service()
                if not self._door_ok():
                    self._safe(m.DOOR_OPEN)
                    return m.DOOR_OPEN
                code = mech.pick_to_gate(c)
                if code == mc.NO_NOTE:
                    fails += 1
                    if fails >= _PICK_RETRIES:
                        # The cassette is physically empty whatever its counter says.
                        jr.empty(c)
                        self._update_units()
                        result = m.CASH_UNIT_ERROR
                        break
                    continue
                if code != mc.OK:
                    self.c["jams"] += 1
                    self._emit("jam", c if code != mc.JAM_SENSOR else m.JAM_TRANSPORT, m.JAMMED)
                    self._safe(m.JAMMED)
                    return m.JAMMED
                fails = 0
                n = mech.notes
                divert = n != 1
                if divert:
                    jr.picked(c, n, j.DEST_REJECT)
                    self.c["double_picks"] += 1
                    self._emit("double_pick", c, n)
                else:
                    jr.picked(c, 1, j.DEST_STACKER)
                code = mech.deliver(divert, n)
                if code != mc.OK:
                    self.c["jams"] += 1
                    self._emit("jam", m.JAM_TRANSPORT, m.JAMMED)
                    self._safe(m.JAMMED)
                    return m.JAMMED
                if divert:
                    jr.diverted()
                else:
                    self.c["notes_dispensed"] += 1
        return result

    def present(self, txid):
        tx = self.jr.open_tx
        if tx is None or tx.txid != txid:
            return m.UNKNOWN_TRANSACTION, 0
        if self.state != m.STATE_STACKED:
            return m.SEQUENCE_ERROR, 0
        if sum(tx.stacked) == 0:
            return m.SEQUENCE_ERROR, 0
        if not self._door_ok():
            return m.DOOR_OPEN, 0
        self.state = m.STATE_PRESENTING
        self.jr.mark(j.REC_PRESENT)
        if self.mech.open_shutter() != mc.OK:
            self._emit("jam", m.JAM_SHUTTER, m.SHUTTER_FAILURE)
            self._safe(m.SHUTTER_FAILURE)
            return m.SHUTTER_FAILURE, 0
        if self.mech.move_to_presenter() != mc.OK:
            self.c["jams"] += 1
            self._emit("jam", m.JAM_PRESENTER, m.JAMMED)
            self._safe(m.JAMMED)
            return m.JAMMED, 0
        n = sum(tx.stacked)
        self.jr.note(j.REC_PRESENTED, n)
        self.state = m.STATE_PRESENTED
        self._presented_at = time.ticks_ms()
        self._emit("items_presented", txid, n)
        return m.SUCCESS, n

    def retract(self, txid):
        tx = self.jr.open_tx
        if tx is None or tx.txid != txid:
            return m.UNKNOWN_TRANSACTION, 0
        if self.state != m.STATE_PRESENTED:
            return m.SEQUENCE_ERROR, 0
        return self._retract(tx)

    def _retract(self, tx):
        self.state = m.STATE_RETRACTING
        self.jr.mark(j.REC_RETRACT)
        code = self.mech.retract()
        r = self.mech.notes
        self.jr.mark(j.REC_RETRACTED, r)
        self.c["retracts"] += 1
        if code != mc.OK:
            self._emit("jam", m.JAM_PRESENTER, m.JAMMED)
            self._safe(m.JAMMED)
            return m.JAMMED, r
        if self.mech.close_shutter() != mc.OK:
            self._emit("jam", m.JAM_SHUTTER, m.SHUTTER_FAILURE)
        self._emit("items_retracted", tx.txid, r)
        flags = m.REPORT_FLAG_TAKEN if tx.retracted < tx.presented else 0
        self._finish(m.PRESENT_PRESENTED, flags)
        return m.SUCCESS, r

    def tick(self):
        """Called from the main loop: door and tamper changes, notes taken, or the present timeout."""
        self._watch_guard()
        if self.state != m.STATE_PRESENTED:
            return
        tx = self.jr.open_tx
        if not self.mech.presenter_has_notes():
            self.jr.note(j.REC_TAKEN, tx.presented)
            self._finish(m.PRESENT_PRESENTED, m.REPORT_FLAG_TAKEN)  # durable before anything moves
            self.mech.close_shutter()
            self._emit("items_taken", tx.txid, tx.presented)
            return
        if time.ticks_diff(time.ticks_ms(), self._presented_at) >= self.retract_timeout_ms:
            self._retract(tx)

    def _watch_guard(self):
        """Raise a tamper event on every change of the safe door or the tamper loop (checked every 100 ms)."""
        now = time.ticks_ms()
        if time.ticks_diff(now, self._guard_at) < _GUARD_POLL_MS:
            return
        self._guard_at = now
        door = 1 if self.mech.door_open() else 0
        tamper = 1 if self.mech.tampered() else 0
        guard = door | (tamper << 1)
        if guard != self._guard:
            self._guard = guard
            self._emit("tamper", door, tamper)

    def _maint(self, code, own_args, device_id, nonce, mac):
        """A maintenance command's token: the MAC covers its code and its own argument bytes."""
        result = self.sec.check_token(
            device_id, nonce, mac, lambda k: auth.maint_mac(k, device_id, nonce, code, own_args)
        )
        if result == m.SUCCESS:
            self.c["maint_commands"] += 1
        return result

    def reject(self, code, device_id, nonce, mac):
        """Empty the stacker into the reject bin (maintenance token; docs/threat-model.md).

        The intent is journalled with the transaction before anything moves, so a power cut at any
        instant of the motion is settled at boot with every stacked note in the bin and the report."""
        tx = self.jr.open_tx
        if self.state not in (m.STATE_STACKED, m.STATE_IDLE):
            return m.SEQUENCE_ERROR, 0
        result = self._maint(code, b"", device_id, nonce, mac)
        if result != m.SUCCESS:
            return result, 0
        self.state = m.STATE_BUSY
        if tx is not None:
            self.jr.mark(j.REC_REJECT)
        code = self.mech.dump_stacker()
        k = self.mech.notes
        if tx is not None:
            self.jr.rejected(k)
            self._finish(m.PRESENT_NOT_PRESENTED, 0)
        else:
            self.jr.purged(k, 0)
            self.state = m.STATE_IDLE
        if code != mc.OK:
            self._safe(m.JAMMED)
            return m.JAMMED, k
        return m.SUCCESS, k

    def count(self, cassette, code, device_id, nonce, mac):
        """Count a cassette by moving all its notes into the reject bin (maintenance token).

        The notes go through the stacker: each pick is booked (one record) while it waits at the
        gate, then stacked; the stacker is emptied into the reject bin every _COUNT_BATCH notes and at
        the end. A power cut at any instant is settled at boot like a dispense (recover())."""
        if self.state != m.STATE_IDLE:
            return m.SEQUENCE_ERROR, 0
        result = self._maint(code, bytes((cassette,)), device_id, nonce, mac)
        if result != m.SUCCESS:
            return result, 0
        if cassette >= m.N_CASSETTES:
            return m.INVALID_DATA, 0
        jr = self.jr
        mech = self.mech
        self.state = m.STATE_BUSY
        jr.count_begin(cassette)
        k = jr.count
        fails = 0
        while fails < _PICK_RETRIES:
            self._service()
            code = mech.pick_to_gate(cassette)
            if code == mc.NO_NOTE:
                fails += 1
                continue
            if code != mc.OK:
                self._safe(m.JAMMED)  # the count stays open: RESET settles it
                return m.JAMMED, k.total
            fails = 0
            n = mech.notes
            jr.count_note(cassette, n)
            if mech.deliver(False, n) != mc.OK:
                self._safe(m.JAMMED)
                return m.JAMMED, k.total
            if k.stacked >= _COUNT_BATCH:
                if mech.dump_stacker() != mc.OK:
                    self._safe(m.JAMMED)
                    return m.JAMMED, k.total
                jr.count_dumped(mech.notes)
        if mech.stacker_has_notes() and mech.dump_stacker() != mc.OK:
            self._safe(m.JAMMED)
            return m.JAMMED, k.total
        total = k.total
        jr.count_end(cassette, True)
        self.state = m.STATE_IDLE
        self._update_units()
        return m.SUCCESS, total

    def replenish(self, device_id, nonce, denoms, counts, mac):
        if self.state != m.STATE_IDLE:
            return m.SEQUENCE_ERROR
        code = self.sec.check_token(
            device_id, nonce, mac, lambda k: auth.replenish_mac(k, device_id, nonce, denoms, counts)
        )
        if code != m.SUCCESS:
            return code
        self.jr.set_cassettes(denoms, counts)
        self.unit_status = [m.UNIT_OK, m.UNIT_OK, m.UNIT_OK, m.UNIT_OK]
        self._update_units()
        return m.SUCCESS

    def open_shutter(self, code, device_id, nonce, mac):
        """Open the shutter with nothing presented (maintenance token: it exposes the note path)."""
        if self.state != m.STATE_IDLE:
            return m.SEQUENCE_ERROR
        result = self._maint(code, b"", device_id, nonce, mac)
        if result != m.SUCCESS:
            return result
        return self.shutter(True)

    def shutter(self, open_it):
        if self.state != m.STATE_IDLE:
            return m.SEQUENCE_ERROR
        code = self.mech.open_shutter() if open_it else self.mech.close_shutter()
        return m.SUCCESS if code == mc.OK else m.SHUTTER_FAILURE

    def reset(self):
        """Clear a fault: empty the path, finish any open transaction, close the shutter."""
        if self.state not in (m.STATE_FAULT, m.STATE_IDLE, m.STATE_STACKED):
            return m.SEQUENCE_ERROR, 0
        self.state = m.STATE_BUSY
        moved = self.recover()
        if self.state == m.STATE_BUSY:
            self.state = m.STATE_IDLE
            self.fault = 0
        return (m.SUCCESS if self.state == m.STATE_IDLE else m.HARDWARE_ERROR), moved

    def set_retract_timeout(self, ms):
        """Open to the host (it sets it after every boot), but never while a bundle waits to be taken."""
        if self.state in (m.STATE_STACKED, m.STATE_PRESENTING, m.STATE_PRESENTED):
            return m.SEQUENCE_ERROR
        if ms < _RETRACT_TIMEOUT_MIN or ms > _RETRACT_TIMEOUT_MAX:
            return m.INVALID_DATA
        self.retract_timeout_ms = ms
        return m.SUCCESS

    # ----- reconciliation --------------------------------------------------------------------------
    def recover(self):
        """Empty the path and settle the open transaction exactly; returns the notes moved to bins.

        Used at boot (after a power cut or watchdog reset) and by RESET. Notes are counted by the
        bin entry sensors as they move; the journal says which transaction and cassette they belong to.
        """
        jr = self.jr
        mech = self.mech
        tx = jr.open_tx
        if jr.count is not None or (tx is not None and tx.phase in _BINNED):
            return self._recover_moving()
        if mech.purge_transport() != mc.OK:
            self._safe(m.JAMMED)
            return mech.notes
        purged = mech.notes  # notes that were between the pick rollers and the bins
        dumped = 0
        if mech.stacker_has_notes():
            code = mech.dump_stacker()
            dumped = mech.notes
            if code != mc.OK:
                self._safe(m.JAMMED)
                return purged + dumped
        retracted = 0
        if mech.presenter_has_notes():
            mech.retract()
            retracted = mech.notes
        if not mech.shutter_closed():
            mech.close_shutter()
        moved = purged + dumped + retracted
        if tx is None:
            if moved:
                jr.purged(purged + dumped, retracted)  # notes no transaction owns: counted, binned
            return moved
        self.c["power_recoveries"] += 1
        flags = m.REPORT_FLAG_RECOVERED
        expected = sum(tx.stacked)  # notes the journal says are in the stacker
        # One SETTLE record books everything recovery moved: notes from the cassette of a pick that was
        # under way (never journalled), booked notes into the reject bin, notes into the retract bin.
        unbooked = 0
        booked = 0
        if tx.phase == j.REC_REJECT:
            # Cut while the stacker was being emptied: every stacked note of the transaction is in the
            # reject bin now, some moved before the cut (not counted yet), the rest just now.
            booked = expected + purged
            status = m.PRESENT_NOT_PRESENTED
            tx.presented = 0
        elif tx.phase == j.REC_REJECTED:
            booked = purged + dumped  # the stacker was emptied and counted; only END is missing
            status = m.PRESENT_NOT_PRESENTED
            tx.presented = 0
        elif tx.phase in (j.REC_BEGIN, j.REC_PICKED, j.REC_DIVERTED, j.REC_EMPTY, j.REC_STACKED):
            # Nothing reached the presenter: every note of the transaction ends in the reject bin.
            # Notes beyond what the journal knows came from the pick that was under way.
            from_stacker = min(dumped, expected)
            unbooked = purged + dumped - from_stacker
            if tx.phase == j.REC_PICKED and tx.last_dest == j.DEST_REJECT:
                unbooked -= min(purged, tx.last_n)  # a double pick still in the path: already booked
            booked = from_stacker
            status = m.PRESENT_NOT_PRESENTED
            tx.presented = 0
        else:
            # The bundle had started towards the customer: what is not back in a bin left the machine.
            booked = purged + dumped
            tx.presented = max(0, expected - dumped)
            status = -1
        cur = tx.current_cassette()
        jr.settle(unbooked, cur if cur >= 0 else 0xFF, booked, retracted)
        if status < 0:
            if tx.phase == j.REC_TAKEN:
                status = m.PRESENT_PRESENTED
                flags |= m.REPORT_FLAG_TAKEN
            elif tx.presented == 0:
                status = m.PRESENT_NOT_PRESENTED
            elif tx.presented == tx.retracted:
                status = m.PRESENT_PRESENTED
            else:
                # Notes are missing and no sensor saw them taken: XFS4IoT "unknown", for the bank to
                # settle by reconciliation (bin count, camera) instead of guessing either way.
                status = m.PRESENT_UNKNOWN
        self.recovered = tx.txid
        self._finish(status, flags)
        return moved

    def _recover_moving(self):
        """Settle a transaction that had not reached the presenter, or a count, so that a cut at any
        instant of this recovery too is settled exactly by the next one (returns the notes moved).

        Every booked note (stacked, or counted) ends in the reject bin whatever happens: RECOVER is
        journalled before anything moves, then the stacker is emptied (RDUMPED: its booked notes are
        in the bin, with the count seen). The stacker holds no unbooked note (picks are journalled
        at the gate), so the only notes no record names are those of a pick that was under way: the
        path is run into the empty stacker, counting them at its entry, and RSTACKED books them
        before the stacker is emptied again. If the last booked pick was still at the gate, the
        first dump came one bundle short of the booked notes: that bundle is not booked twice."""
        jr = self.jr
        mech = self.mech
        tx = jr.open_tx
        t = tx if tx is not None else jr.count
        if t is None:  # not an assert: the board image is compiled with -O3, which drops them
            raise ValueError("no transaction to recover")
        self.c["power_recoveries"] += 1
        moved = 0
        stage = t.rstage
        if stage == j.RS_NONE:
            jr.recover()
        if stage < j.RS_DUMPED:
            dumped = 0
            if mech.stacker_has_notes():
                if mech.dump_stacker() != mc.OK:
                    self._safe(m.JAMMED)
                    return mech.notes
                dumped = mech.notes
            moved += dumped
            # The count of a dump is known only if this recovery emptied the whole stacker.
            jr.rdumped(dumped if stage == j.RS_NONE else 0xFF)
        if stage < j.RS_STACKED:
            if tx is not None:
                expected = sum(tx.stacked)
                last_booked = tx.phase == j.REC_PICKED
                reject_path = last_booked and tx.last_dest == j.DEST_REJECT
                cur = tx.current_cassette()
                cassette = cur if cur >= 0 else 0xFF
            else:
                expected = t.stacked
                last_booked = t.phase == j.REC_COUNT_NOTE
                reject_path = False
                cassette = t.cassette
            booked_on_path = 0
            if reject_path:
                booked_on_path = t.last_n  # a booked double pick: on the path, or in the reject bin
            elif last_booked and t.rdump != 0xFF and t.rdump + t.last_n == expected:
                booked_on_path = t.last_n  # the last booked pick had not left the gate
            if self._path_to_stacker() != mc.OK:
                self._safe(m.JAMMED)
                return moved + self._moved
            moved += self._moved
            if stage == j.RS_DUMPED:
                # A recovery before this one may have run the path into the stacker already and lost
                # the count: count the stacker out now, then book.
                in_stacker = 0
                if mech.stacker_has_notes():
                    if mech.dump_stacker() != mc.OK:
                        self._safe(m.JAMMED)
                        return moved + mech.notes
                    in_stacker = mech.notes
                    moved += in_stacker
                if in_stacker:
                    jr.rstacked(max(0, in_stacker - booked_on_path), cassette, 0)
            elif self._moved:
                jr.rstacked(max(0, self._moved - booked_on_path), cassette, self._moved)
        if mech.stacker_has_notes():
            # Booked notes only (RSTACKED): their count changes nothing.
            if mech.dump_stacker() != mc.OK:
                self._safe(m.JAMMED)
                return moved + mech.notes
            moved += mech.notes
        if mech.presenter_has_notes():
            mech.retract()  # nothing of these phases reaches the presenter: stray notes, counted
            moved += mech.notes
            jr.purged(0, mech.notes)
        if not mech.shutter_closed():
            mech.close_shutter()
        if tx is None:
            jr.count_end(t.cassette, False)
            return moved
        tx.presented = 0
        self.recovered = tx.txid
        self._finish(m.PRESENT_NOT_PRESENTED, m.REPORT_FLAG_RECOVERED)
        return moved

    def _path_to_stacker(self):
        """Run the belt with the gate set to the stacker until the path is quiet; self._moved = notes
        counted into the stacker (a bundle already on its way to the reject bin runs on into it)."""
        mech = self.mech
        b = mech.b
        self._moved = 0
        micropython.heap_lock()
        try:
            b.gate_stacker.value(1)
            b.transport.value(1)
            last_s = b.stacker_entry.value()
            last_r = b.reject_entry.value()
            quiet = time.ticks_ms()
            start = quiet
            polls = 0  # reads since the last activity: a stall of the loop is not a quiet path
            while polls < _QUIET_POLLS or time.ticks_diff(time.ticks_ms(), quiet) < mc.QUIET_MS:
                b.wdt.feed()
                polls += 1
                s = b.stacker_entry.value()
                r = b.reject_entry.value()
                if s != last_s:
                    last_s = s
                    quiet = time.ticks_ms()
                    polls = 0
                    if s == 1:
                        self._moved += 1
                if r != last_r:
                    last_r = r
                    quiet = time.ticks_ms()
                    polls = 0
                if b.note_sensor.value() == 1:
                    quiet = time.ticks_ms()
                    polls = 0
                if time.ticks_diff(time.ticks_ms(), start) > mc.BUNDLE_MS:
                    return mc.JAM_TRANSPORT
            return mc.OK
        finally:
            micropython.heap_unlock()
            mech.all_off()

    # ----- reports ---------------------------------------------------------------------------------
    def report(self, txid):
        tx = self.jr.find(txid)
        if tx is None:
            return m.UNKNOWN_TRANSACTION, None
        final = tx is not self.jr.open_tx
        s = tx.stacked
        unknown = tx.present_status == m.PRESENT_UNKNOWN
        status = (
            tx.present_status
            if final
            else (m.PRESENT_PRESENTED if self.state == m.STATE_PRESENTED else m.PRESENT_NOT_PRESENTED)
        )
        presented = tx.presented if final or self.state == m.STATE_PRESENTED else 0
        retracted = tx.retracted
        flags = tx.flags if final else 0
        struct.pack_into(
            m.REPORT_FMT,
            self._report,
            0,
            self.sec.device_id,
            tx.txid,
            tx.nonce,
            s[0],
            s[1],
            s[2],
            s[3],
            presented,
            m.UNKNOWN_COUNT if unknown and retracted == 0 and presented == 0 else retracted,
            tx.rejected,
            status,
            flags,
            bytes(m.MAC_LEN),
        )
        self.sec.sign_report(self._report)
        return m.SUCCESS, self._report
