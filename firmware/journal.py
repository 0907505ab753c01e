"""Power-safe transaction journal on littlefs: intent before motion, progress as notes move, outcome after.

Fixed 48-byte records, appended and synced one by one, each with its own CRC (a torn tail is ignored):

    offset 0   type u8      REC_*
    offset 1   flags u8
    offset 2   seqno u16    record counter
    offset 4   txid 16s
    offset 20  aux 16s      nonce (BEGIN) or denominations+counts (CASSETTES)
    offset 36  data <4H     per-type fields
    offset 44  spare u16
    offset 46  crc u16      CRC-16/CCITT over bytes 0..45

Replaying the file from its first record rebuilds the cassette counts, the bins, the recent
finished transactions (for repeated DISPENSE and GET_REPORT) and the one open transaction, if any.
The file is compacted (snapshot + recent transactions to a new file, then an atomic rename) when it
grows past COMPACT_AT records and no transaction is open.
"""

import os
import struct

from atm_wire.crc import crc16

REC_SIZE = 48
_FMT = "<BBH16s16s4HH"

REC_CASSETTES = 1  # aux = denominations <4H + counts <4H; data = reject bin, retract bin
REC_BEGIN = 2  # token accepted: txid, aux = nonce, data = notes requested per cassette
REC_PICK = 3  # about to run a pick motor: data[0] = cassette
REC_PICKED = 4  # note(s) at the gate: data = cassette, notes, destination (0 stacker, 1 reject)
REC_STACKED = 5  # dispense phase over: data = notes in the stacker per cassette
REC_PRESENT = 6  # about to open the shutter and present
REC_PRESENTED = 7  # data[0] = notes in the presenter
REC_TAKEN = 8  # data[0] = notes the customer took
REC_RETRACT = 9  # about to retract
REC_RETRACTED = 10  # data[0] = notes counted into the retract bin
REC_END = 11  # outcome: flags = report flags, data = present status, presented, retracted, rejected
REC_PURGED = 12  # notes found in the path after a reset: data = to reject bin, to retract bin, cassette
REC_REJECTED = 13  # the open transaction's stacker emptied into the reject bin: data[0] = notes
REC_COUNTED = 14  # a cassette counted into the reject bin: data = cassette, notes
REC_REJECT = 15  # about to empty the open transaction's stacker into the reject bin (REJECT)

DEST_STACKER = 0
DEST_REJECT = 1

COMPACT_AT = 400
RECENT_MAX = 16
PATH = "journal.bin"
_ZERO16 = bytes(16)


class Tx:
    """A transaction as the journal knows it."""

    def __init__(self, txid, nonce, requested):
        self.txid = txid
        self.nonce = nonce
        self.requested = requested
        self.stacked = [0, 0, 0, 0]
        self.rejected = 0  # notes of this transaction that went to the reject bin, in all
        self.rejected_by = [0, 0, 0, 0]  # of which double picks diverted, per cassette
        self.phase = REC_BEGIN  # the last record type seen for this transaction
        self.last_pick = -1  # cassette of a PICK with no PICKED after it
        self.last_n = 0  # notes and destination of the last PICKED
        self.last_dest = 0
        self.presented = 0
        self.taken = 0
        self.retracted = 0
        self.present_status = 0
        self.flags = 0


class Journal:
    def __init__(self):
        self._buf = bytearray(REC_SIZE)
        self._seq = 0
        self._count = 0
        self._f = None
        self.denoms = [100, 50, 20, 10]
        self.counts = [0, 0, 0, 0]
        self.reject_bin = 0
        self.retract_bin = 0
        self.open_tx = None
        self.recent = []  # finished Tx, newest last
        self.torn_records = 0

    # ----- writing ---------------------------------------------------------------------------------
    def _append(self, rtype, txid=_ZERO16, aux=_ZERO16, d0=0, d1=0, d2=0, d3=0, flags=0):
        buf = self._buf
        struct.pack_into(_FMT, buf, 0, rtype, flags, self._seq, txid, aux, d0, d1, d2, d3, 0)
        crc = crc16(buf, 0, REC_SIZE - 2)
        buf[REC_SIZE - 2] = crc & 0xFF
        buf[REC_SIZE - 1] = crc >> 8
        if self._f is None:
            self._f = open(PATH, "ab")
        self._f.write(buf)
        self._f.flush()  # littlefs commits the record here: it survives a power cut from now on
        self._seq = (self._seq + 1) & 0xFFFF
        self._count += 1
        self._apply(rtype, flags, txid, aux, d0, d1, d2, d3)

    def snapshot(self):
        d = self.denoms
        c = self.counts
        aux = struct.pack("<4H4H", d[0], d[1], d[2], d[3], c[0], c[1], c[2], c[3])
        self._append(REC_CASSETTES, aux=aux, d0=self.reject_bin & 0xFFFF, d1=self.retract_bin & 0xFFFF)

    def begin(self, txid, nonce, notes):
        self._append(REC_BEGIN, txid, nonce, notes[0], notes[1], notes[2], notes[3])

    def _tx(self):
        tx = self.open_tx
        assert tx is not None, "no open transaction"
        return tx

    def pick(self, cassette):
        self._append(REC_PICK, self._tx().txid, d0=cassette)

    def picked(self, cassette, notes, dest):
        self._append(REC_PICKED, self._tx().txid, d0=cassette, d1=notes, d2=dest)

    def stacked(self):
        tx = self._tx()
        s = tx.stacked
        self._append(REC_STACKED, tx.txid, d0=s[0], d1=s[1], d2=s[2], d3=s[3])

    def mark(self, rtype, value=0):
        self._append(rtype, self._tx().txid, d0=value)

    def end(self, present_status, flags):
        tx = self._tx()
        self._append(
            REC_END, tx.txid, d0=present_status, d1=tx.presented, d2=tx.retracted, d3=tx.rejected, flags=flags
        )

    def purged(self, to_reject, to_retract, cassette=0xFF):
        self._append(REC_PURGED, d0=to_reject, d1=to_retract, d2=cassette)

    def rejected(self, notes):
        self._append(REC_REJECTED, self._tx().txid, d0=notes)

    def counted(self, cassette, notes):
        self._append(REC_COUNTED, d0=cassette, d1=notes)

    def set_cassettes(self, denoms, counts):
        for i in range(4):
            self.denoms[i] = denoms[i]
            self.counts[i] = counts[i]
        self.snapshot()

    # ----- replay ----------------------------------------------------------------------------------
    def _apply(self, rtype, flags, txid, aux, d0, d1, d2, d3):
        tx = self.open_tx
        if rtype == REC_CASSETTES:
            v = struct.unpack("<4H4H", aux)
            for i in range(4):
                self.denoms[i] = v[i]
                self.counts[i] = v[4 + i]
            self.reject_bin = d0
            self.retract_bin = d1
            return
        if rtype == REC_PURGED:
            self.reject_bin += d0
            self.retract_bin += d1
            if d2 < 4:
                self.counts[d2] = max(0, self.counts[d2] - d0 - d1)
            return
        if rtype == REC_COUNTED:
            self.counts[d0] = 0
            self.reject_bin += d1
            return
        if rtype == REC_BEGIN:
            self.open_tx = Tx(bytes(txid), bytes(aux), [d0, d1, d2, d3])
            return
        if tx is None or bytes(txid) != tx.txid:
            return
        tx.phase = rtype
        if rtype == REC_PICK:
            tx.last_pick = d0
        elif rtype == REC_PICKED:
            tx.last_pick = -1
            tx.last_n = d1
            tx.last_dest = d2
            self.counts[d0] = max(0, self.counts[d0] - d1)
            if d2 == DEST_STACKER:
                tx.stacked[d0] += d1
            else:
                tx.rejected += d1
                tx.rejected_by[d0] += d1
                self.reject_bin += d1
        elif rtype == REC_PRESENTED:
            tx.presented = d0
        elif rtype == REC_TAKEN:
            tx.taken = d0
        elif rtype == REC_RETRACTED:
            tx.retracted += d0
            self.retract_bin += d0
        elif rtype == REC_REJECTED:
            # Counted out of their cassettes when picked; now in the reject bin, this transaction's.
            tx.rejected += d0
            self.reject_bin += d0
        elif rtype == REC_END:
            tx.present_status = d0
            tx.presented = d1
            tx.retracted = d2
            tx.rejected = d3
            tx.flags = flags
            self.open_tx = None
            self._remember(tx)

    def _remember(self, tx):
        for i in range(len(self.recent)):
            if self.recent[i].txid == tx.txid:
                self.recent.pop(i)
                break
        self.recent.append(tx)
        if len(self.recent) > RECENT_MAX:
            self.recent.pop(0)

    def find(self, txid):
        if self.open_tx is not None and self.open_tx.txid == txid:
            return self.open_tx
        for tx in self.recent:
            if tx.txid == txid:
                return tx
        return None

    def load(self):
        """Replay the journal file; returns the number of good records."""
        buf = self._buf
        good = 0
        try:
            f = open(PATH, "rb")
        except OSError:
            return 0
        with f:
            while f.readinto(buf) == REC_SIZE:
                crc = buf[REC_SIZE - 2] | (buf[REC_SIZE - 1] << 8)
                if crc != crc16(buf, 0, REC_SIZE - 2):
                    self.torn_records += 1
                    break  # a torn tail: everything after it is ignored
                v = struct.unpack_from(_FMT, buf, 0)
                self._seq = (v[2] + 1) & 0xFFFF
                self._apply(v[0], v[1], v[3], v[4], v[5], v[6], v[7], v[8])
                good += 1
        self._count = good
        return good

    def maybe_compact(self):
        if self.open_tx is not None or self._count < COMPACT_AT:
            return False
        self.compact()
        return True

    def compact(self):
        """Rewrite the journal as a snapshot plus the recent finished transactions."""
        if self._f is not None:
            self._f.close()
            self._f = None
        recent = self.recent
        self.recent = []
        tmp = PATH + ".new"
        try:
            os.remove(tmp)
        except OSError:
            pass
        self._f = open(tmp, "ab")
        self._count = 0
        self.snapshot()
        keep_counts = list(self.counts)
        keep_reject = self.reject_bin
        keep_retract = self.retract_bin
        for tx in recent:
            s = tx.stacked
            self._append(
                REC_BEGIN,
                tx.txid,
                tx.nonce,
                tx.requested[0],
                tx.requested[1],
                tx.requested[2],
                tx.requested[3],
            )
            for c in range(4):
                if s[c]:
                    self._append(REC_PICKED, tx.txid, d0=c, d1=s[c], d2=DEST_STACKER)
                if tx.rejected_by[c]:
                    self._append(REC_PICKED, tx.txid, d0=c, d1=tx.rejected_by[c], d2=DEST_REJECT)
            self._append(
                REC_END,
                tx.txid,
                d0=tx.present_status,
                d1=tx.presented,
                d2=tx.retracted,
                d3=tx.rejected,
                flags=tx.flags,
            )
        # Replaying the copied transactions must not move the cassette counts or bins again.
        for i in range(4):
            self.counts[i] = keep_counts[i]
        self.reject_bin = keep_reject
        self.retract_bin = keep_retract
        self.snapshot()
        self._f.close()
        self._f = None
        os.rename(tmp, PATH)
