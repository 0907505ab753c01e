"""Power-safe state on raw flash: an append-only record log in a ring of erase blocks (no littlefs).

Everything the firmware must remember across a power cut lives here: cassette contents and bins,
the transaction journal (intent before motion, outcome after), the device key and the nonce epoch.
littlefs holds only the code and is never written at run time (docs/deployment.md).

The log uses RAW_BLOCKS erase blocks (layout.py) as a ring. Every flash program is one 256-byte
page, programmed once after its block was erased, and holds one commit:

    offset 0   magic u8      0xA7
    offset 1   kind u8       _K_HEAD (page 0 of a block), _K_LOG, _K_SNAP, _K_SNAP_END
    offset 2   nrec u8       records in the page, 0..5
    offset 3   zero u8
    offset 4   bseq u32      sequence number of the block (one more for every block the ring enters)
    offset 8   nrec records of 48 bytes:
                 type u8, flags u8, seqno u16, txid 16s, aux 16s, d0..d3 u16, x u16, zero u16
    then       crc u16       CRC-16/CCITT (atm_wire.crc) over the page up to here, big-endian

A block is entered by erasing it and programming its header page. Every _SNAP_EVERY blocks the ring
enters, a snapshot (the whole state as records, _K_SNAP pages ending with _K_SNAP_END) is written
first; blocks older than the newest complete snapshot are free. At boot the newest complete snapshot
is replayed, then every log page after it, in block order. A page torn by a power cut fails its CRC
and is skipped (its intent never became durable, so its motion never began); a page that is not
erased is never programmed again; a torn erase or header leaves a block that is not valid and is
erased again before use; a torn snapshot is ignored and the previous one still holds. So a cut at
any erase or program loses nothing that was committed before it.

Cost: one page program per record; a pick is one record (PICKED, or COUNT_NOTE in a count), written
while it waits at the escrow gate, before it moves on; a transaction adds BEGIN, PRESENT and END. One
erase per 15 records, amortised. Boot recovery journals its own intent and progress (RECOVER, RDUMPED,
RSTACKED), so a cut during a recovery is settled exactly by the next one (docs/protocol.md).
"""

import struct

from atm_wire.crc import crc16
from layout import PAGE_SIZE, RAW_BLOCKS
from micropython import const

_FMT = "<BBH16s16s4HH"
_REC_SIZE = const(48)
_HDR = const(8)
_PER_PAGE = const(5)  # records per page: 8 + 5 * 48 + 2 <= 256
_PAGES = const(16)  # pages per block
_MAGIC = const(0xA7)
_K_HEAD = const(1)
_K_LOG = const(2)
_K_SNAP = const(3)
_K_SNAP_END = const(4)
_SNAP_EVERY = const(8)  # blocks between snapshots; at most _SNAP_EVERY + 1 blocks are ever needed

_REC_CASSETTES = const(1)  # aux = denominations <4H + counts <4H; data = reject bin, retract bin
REC_BEGIN = const(2)  # token accepted: txid, aux = nonce, data = notes requested per cassette
_REC_PICK = const(3)  # (in memory only) a pick may be under way from tx.current_cassette()
REC_PICKED = const(4)  # note(s) of one pick: data = cassette, notes, destination (0 stacker, 1 reject)
REC_STACKED = const(5)  # (in memory only) dispense phase over
REC_PRESENT = const(6)  # about to open the shutter and present
REC_PRESENTED = const(7)  # (in memory only) data[0] = notes in the presenter
REC_TAKEN = const(8)  # (in memory only) the customer took the notes; END follows at once
REC_RETRACT = const(9)  # about to retract
REC_RETRACTED = const(10)  # data[0] = notes counted into the retract bin
_REC_END = const(11)  # outcome: flags = report flags, data = present status, presented, retracted, rejected
_REC_PURGED = const(12)  # notes no transaction owns, binned: data = to reject bin, to retract bin, cassette
REC_REJECTED = const(13)  # the open transaction's stacker emptied into the reject bin: data[0] = notes
_REC_COUNTED = const(14)  # a cassette counted into the reject bin: data = cassette, notes
REC_REJECT = const(15)  # about to empty the open transaction's stacker into the reject bin (REJECT)
REC_DIVERTED = const(16)  # the double pick booked by the last PICKED reached the reject bin
REC_EMPTY = const(17)  # data[0] = cassette found empty while dispensing (its count becomes 0)
_REC_SETTLE = const(18)  # (replayed, no longer written) older boot recovery: d0 notes from cassette d1 and
#                  d2 booked notes to the reject bin, d3 notes to the retract bin
_REC_KEY = const(19)  # the device key: txid = bytes 0..15, aux = bytes 16..31
_REC_EPOCH = const(20)  # the nonce epoch: d0 = low half, d1 = high half
# Snapshot of a finished transaction: txid, aux = nonce, data = stacked, flags, x = status.
_REC_SNAP_TX = const(21)
_REC_SNAP_TX2 = const(22)  # ... its aux = rejected_by <4H, presented, retracted, rejected, 0
# Snapshot of the open transaction after its BEGIN: aux = stacked <4H + rejected_by <4H,
# d0 = rejected, d1 = phase | empty mask << 8, d2 = retracted, d3 = presented,
# flags = last destination | recovery stage << 4, x = last notes | recovery dump << 8.
_REC_SNAP_OPEN = const(23)
_REC_COUNT = const(24)  # about to count cassette d0: its notes go into the stacker, then the reject bin
REC_COUNT_NOTE = const(25)  # d1 notes of cassette d0 held at the gate, about to go into the stacker (booked
#                      into the reject bin now: they end there whatever happens)
_REC_COUNT_DUMPED = const(26)  # the count's stacker was emptied into the reject bin (d0 notes counted out)
_REC_COUNT_END = const(27)  # the count of cassette d0 is over; d1 = 1: the cassette was found empty (count 0)
_REC_RECOVER = const(28)  # boot recovery is about to move the open transaction's (or count's) notes
# Recovery emptied the stacker: d0 notes counted out; the booked stacked notes are in the reject bin
# now (a transaction's are booked there by this record).
_REC_RDUMPED = const(29)
_REC_RSTACKED = const(30)  # recovery ran the path into the empty stacker: d0 notes no record had booked, from
#                    cassette d1, booked into the reject bin now; d2 notes are in the stacker
_REC_SNAP_COUNT = const(31)  # snapshot of an open count: d0 cassette, d1 notes in its stacker, d2 last notes,
#                      d3 = phase | recovery stage << 8, x = recovery dump

# Recovery stages (Tx.rstage, Count.rstage): what the last recovery record says is done.
RS_NONE = const(0)
_RS_MOVING = const(1)  # RECOVER written: the stacker may be partly emptied, its count is lost
RS_DUMPED = const(2)  # RDUMPED written: the stacker was empty; the path may have run into it since
RS_STACKED = const(3)  # RSTACKED written: what is in the stacker is booked; empty it, then close

DEST_STACKER = const(0)
DEST_REJECT = const(1)

_RECENT_MAX = const(16)
# A finished transaction as kept in `recent`: every Tx field in 88 bytes (a Tx object takes ~500 bytes
# of heap; 16 of them were the firmware's largest live data). txid, nonce, requested, stacked,
# rejected_by, rejected, presented, taken, retracted, phase, empty, last_n, last_dest, present_status,
# flags, rstage, rdump.
_DONE_FMT = "<16s16s4H4H4H4H7BH"
_ZERO16 = bytes(16)


_ERASED = b"\xff" * PAGE_SIZE  # what an erased page reads: the unused tail of a page stays erased

try:
    # The viper copy (machine code): the tail fill was ~200 Python iterations per record on the chip.
    from atm_wire.fastcrc import copy_into as _copy_into

    def _fill_erased(page, start):
        _copy_into(page, start, _ERASED, 0, PAGE_SIZE - start)

except ImportError:

    def _fill_erased(page, start):
        for i in range(start, PAGE_SIZE):
            page[i] = 0xFF


class JournalError(Exception):
    """The raw flash region cannot hold the log (a layout or hardware fault)."""


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
        self.empty = 0  # bit c: cassette c found empty during this dispense
        self.last_n = 0  # notes and destination of the last PICKED
        self.last_dest = 0
        self.presented = 0
        self.taken = 0
        self.retracted = 0
        self.present_status = 0
        self.flags = 0
        self.rstage = RS_NONE  # boot recovery's progress (RECOVER, RDUMPED, RSTACKED)
        self.rdump = 0  # notes recovery counted out of the stacker (0xFF: a cut lost the count)

    def pack(self):
        """The finished transaction as `recent` keeps it (_DONE_FMT)."""
        q = self.requested
        s = self.stacked
        r = self.rejected_by
        return struct.pack(
            _DONE_FMT,
            self.txid,
            self.nonce,
            q[0],
            q[1],
            q[2],
            q[3],
            s[0],
            s[1],
            s[2],
            s[3],
            r[0],
            r[1],
            r[2],
            r[3],
            self.rejected,
            self.presented,
            self.taken,
            self.retracted,
            self.phase,
            self.empty,
            self.last_n,
            self.last_dest,
            self.present_status,
            self.flags,
            self.rstage,
            self.rdump,
        )

    def current_cassette(self):
        """The cassette a pick may be under way from (-1: the dispense phase is over)."""
        for c in range(4):
            if self.stacked[c] < self.requested[c] and not self.empty & (1 << c):
                return c
        return -1


def _unpack_done(b):
    """A Tx again from its packed form (a copy: changing it changes nothing in `recent`)."""
    v = struct.unpack(_DONE_FMT, b)
    t = Tx(v[0], v[1], [v[2], v[3], v[4], v[5]])
    t.stacked = [v[6], v[7], v[8], v[9]]
    t.rejected_by = [v[10], v[11], v[12], v[13]]
    t.rejected = v[14]
    t.presented = v[15]
    t.taken = v[16]
    t.retracted = v[17]
    t.phase = v[18]
    t.empty = v[19]
    t.last_n = v[20]
    t.last_dest = v[21]
    t.present_status = v[22]
    t.flags = v[23]
    t.rstage = v[24]
    t.rdump = v[25]
    return t


def _txid_is(b, txid):
    """Whether the packed transaction `b` has this txid (compared in place, nothing allocated)."""
    for i in range(16):
        if b[i] != txid[i]:
            return False
    return True


class Count:
    """An open COUNT as the journal knows it: every note it picked is booked into the reject bin."""

    def __init__(self, cassette):
        self.cassette = cassette
        self.stacked = 0  # notes of this count in the stacker since its last dump (all booked)
        self.last_n = 0  # notes of the last COUNT_NOTE (they may still be at the gate)
        self.phase = _REC_COUNT
        self.total = 0  # notes counted since the count began (this boot's answer)
        self.rstage = RS_NONE
        self.rdump = 0


class Journal:
    def __init__(self, dev):
        self._dev = dev
        self._page = bytearray(PAGE_SIZE)
        self._rd = bytearray(PAGE_SIZE)
        self._rec = bytearray(_REC_SIZE)
        self._seq = 0
        self._head = -1  # block being appended to
        self._bseq = 0  # its sequence number
        self._next_page = _PAGES  # next erased page in the head block
        self._snap_bseq = 0  # block sequence number of the newest complete snapshot
        self.programs = 0  # flash page programs since boot (the benchmark reads these)
        self.erases = 0
        self.torn_pages = 0
        self.denoms = [100, 50, 20, 10]
        self.counts = [0, 0, 0, 0]
        self.reject_bin = 0
        self.retract_bin = 0
        self.key = None
        self.epoch = 0
        self.open_tx = None
        self.count = None  # the open Count, if a COUNT was under way
        self.recent = []  # finished transactions, packed (Tx.pack), newest last

    # ----- flash -----------------------------------------------------------------------------------
    def _read_page(self, block, page):
        self._dev.readblocks(block, self._rd, page * PAGE_SIZE)
        return self._rd

    def _page_ok(self, p):
        """The number of records of a valid page, or -1 (erased, torn or foreign)."""
        if p[0] != _MAGIC or p[3] != 0:
            return -1
        n = p[2]
        if n > _PER_PAGE:
            return -1
        end = _HDR + n * _REC_SIZE
        if ((p[end] << 8) | p[end + 1]) != crc16(p, 0, end):
            return -1
        return n

    def _erased(self, p):
        for i in range(PAGE_SIZE):
            if p[i] != 0xFF:
                return False
        return True

    def _program(self, kind, nrec):
        """Seal the page buffer (header, CRC) and program it at the next erased page of the head."""
        p = self._page
        p[0] = _MAGIC
        p[1] = kind
        p[2] = nrec
        p[3] = 0
        struct.pack_into("<I", p, 4, self._bseq)
        end = _HDR + nrec * _REC_SIZE
        crc = crc16(p, 0, end)
        p[end] = crc >> 8
        p[end + 1] = crc & 0xFF
        _fill_erased(p, end + 2)
        self._dev.writeblocks(self._head, p, self._next_page * PAGE_SIZE)
        self.programs += 1
        self._next_page += 1

    def _enter_block(self, block, bseq):
        self._dev.ioctl(6, block)  # erase: the block was free (older than the newest snapshot)
        self.erases += 1
        self._head = block
        self._bseq = bseq
        self._next_page = 0
        self._program(_K_HEAD, 0)

    def _room(self, pages):
        """Make sure `pages` erased pages follow in the head block (moving on, with a snapshot)."""
        if self._next_page + pages <= _PAGES:
            return
        head = 0 if self._head < 0 else (self._head + 1) % RAW_BLOCKS
        self._enter_block(head, self._bseq + 1)
        if self._bseq - self._snap_bseq >= _SNAP_EVERY:
            self._write_snapshot()

    # ----- writing ---------------------------------------------------------------------------------
    def _pack(self, off, rtype, txid, aux, d0, d1, d2, d3, flags, x):
        struct.pack_into(_FMT, self._page, off, rtype, flags, self._seq, txid, aux, d0, d1, d2, d3, x)
        self._page[off + 46] = 0
        self._page[off + 47] = 0
        self._seq = (self._seq + 1) & 0xFFFF

    def _append(self, rtype, txid=_ZERO16, aux=_ZERO16, d0=0, d1=0, d2=0, d3=0, flags=0, x=0):
        """One record, one page program; durable when this returns (then applied in memory)."""
        self._room(1)
        self._pack(_HDR, rtype, txid, aux, d0, d1, d2, d3, flags, x)
        self._program(_K_LOG, 1)
        self._apply(rtype, flags, txid, aux, d0, d1, d2, d3, x)

    def _snapshot_records(self):
        """The whole state as records: (type, txid, aux, d0, d1, d2, d3, flags, x) tuples."""
        d = self.denoms
        c = self.counts
        out = [
            (
                _REC_CASSETTES,
                _ZERO16,
                struct.pack("<4H4H", d[0], d[1], d[2], d[3], c[0], c[1], c[2], c[3]),
                self.reject_bin & 0xFFFF,
                self.retract_bin & 0xFFFF,
                0,
                0,
                0,
                0,
            ),
            (_REC_EPOCH, _ZERO16, _ZERO16, self.epoch & 0xFFFF, self.epoch >> 16, 0, 0, 0, 0),
        ]
        if self.key is not None:
            out.append((_REC_KEY, self.key[:16], self.key[16:], 0, 0, 0, 0, 0, 0))
        for packed in self.recent:
            tx = _unpack_done(packed)
            s = tx.stacked
            r = tx.rejected_by
            out.append((_REC_SNAP_TX, tx.txid, tx.nonce, s[0], s[1], s[2], s[3], tx.flags, tx.present_status))
            aux = struct.pack("<8H", r[0], r[1], r[2], r[3], tx.presented, tx.retracted, tx.rejected, 0)
            out.append((_REC_SNAP_TX2, tx.txid, aux, 0, 0, 0, 0, 0, 0))
        tx = self.open_tx
        if tx is not None:
            q = tx.requested
            s = tx.stacked
            r = tx.rejected_by
            out.append((REC_BEGIN, tx.txid, tx.nonce, q[0], q[1], q[2], q[3], 0, 0))
            aux = struct.pack("<8H", s[0], s[1], s[2], s[3], r[0], r[1], r[2], r[3])
            out.append(
                (
                    _REC_SNAP_OPEN,
                    tx.txid,
                    aux,
                    tx.rejected,
                    tx.phase | (tx.empty << 8),
                    tx.retracted,
                    tx.presented,
                    tx.last_dest | (tx.rstage << 4),
                    tx.last_n | (tx.rdump << 8),
                )
            )
        k = self.count
        if k is not None:
            out.append(
                (
                    _REC_SNAP_COUNT,
                    _ZERO16,
                    _ZERO16,
                    k.cassette,
                    k.stacked,
                    k.last_n,
                    k.phase | (k.rstage << 8),
                    0,
                    k.rdump,
                )
            )
        return out

    def _write_snapshot(self):
        """The state as _K_SNAP pages, the last one _K_SNAP_END, at the start of the head block."""
        recs = self._snapshot_records()
        pages = (len(recs) + _PER_PAGE - 1) // _PER_PAGE
        if self._next_page + pages > _PAGES:
            raise JournalError("snapshot larger than a block")
        i = 0
        for pg in range(pages):
            n = min(_PER_PAGE, len(recs) - i)
            for k in range(n):
                v = recs[i + k]
                self._pack(_HDR + k * _REC_SIZE, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8])
            i += n
            self._program(_K_SNAP_END if pg == pages - 1 else _K_SNAP, n)
        self._snap_bseq = self._bseq

    def begin(self, txid, nonce, notes):
        self._append(REC_BEGIN, txid, nonce, notes[0], notes[1], notes[2], notes[3])

    def _tx(self):
        tx = self.open_tx
        if tx is None:  # not an assert: the board image is compiled with -O3, which drops them
            raise ValueError("no open transaction")
        return tx

    def picked(self, cassette, notes, dest):
        """The per-note record (the dispense loop's hot path: positional arguments, no lookups)."""
        tx = self._tx()
        self._room(1)
        self._pack(_HDR, REC_PICKED, tx.txid, _ZERO16, cassette, notes, dest, 0, 0, 0)
        self._program(_K_LOG, 1)
        self._apply_picked(tx, cassette, notes, dest)

    def diverted(self):
        self._append(REC_DIVERTED, self._tx().txid)

    def empty(self, cassette):
        self._append(REC_EMPTY, self._tx().txid, d0=cassette)

    def stacked(self):
        self._tx().phase = REC_STACKED  # nothing to make durable: the PICKED records say it all

    def mark(self, rtype, value=0):
        """An intent or a progress record of the open transaction (written to flash)."""
        self._append(rtype, self._tx().txid, d0=value)

    def note(self, rtype, value=0):
        """Progress kept in memory only: recovery does not need it (PRESENTED, TAKEN)."""
        tx = self._tx()
        self._apply(rtype, 0, tx.txid, _ZERO16, value, 0, 0, 0, 0)

    def end(self, present_status, flags):
        tx = self._tx()
        self._append(
            _REC_END,
            tx.txid,
            d0=present_status,
            d1=tx.presented,
            d2=tx.retracted,
            d3=tx.rejected,
            flags=flags,
        )

    def purged(self, to_reject, to_retract, cassette=0xFF):
        self._append(_REC_PURGED, d0=to_reject, d1=to_retract, d2=cassette)

    def settle(self, from_cassette, cassette, booked, retracted):
        self._append(_REC_SETTLE, self._tx().txid, d0=from_cassette, d1=cassette, d2=booked, d3=retracted)

    def rejected(self, notes):
        self._append(REC_REJECTED, self._tx().txid, d0=notes)

    def count_begin(self, cassette):
        self._append(_REC_COUNT, d0=cassette)

    def count_note(self, cassette, notes):
        self._append(REC_COUNT_NOTE, d0=cassette, d1=notes)

    def count_dumped(self, notes):
        self._append(_REC_COUNT_DUMPED, d0=notes)

    def count_end(self, cassette, found_empty):
        self._append(_REC_COUNT_END, d0=cassette, d1=1 if found_empty else 0)

    def _recovery_id(self):
        tx = self.open_tx
        return tx.txid if tx is not None else _ZERO16

    def recover(self):
        """Recovery of the open transaction (or else the open count) is about to move notes."""
        self._append(_REC_RECOVER, self._recovery_id())

    def rdumped(self, notes):
        self._append(_REC_RDUMPED, self._recovery_id(), d0=notes)

    def rstacked(self, unbooked, cassette, in_stacker):
        self._append(_REC_RSTACKED, self._recovery_id(), d0=unbooked, d1=cassette, d2=in_stacker)

    def set_cassettes(self, denoms, counts):
        d = denoms
        c = counts
        aux = struct.pack("<4H4H", d[0], d[1], d[2], d[3], c[0], c[1], c[2], c[3])
        self._append(_REC_CASSETTES, aux=aux, d0=self.reject_bin & 0xFFFF, d1=self.retract_bin & 0xFFFF)

    def set_key(self, key):
        self._append(_REC_KEY, key[:16], key[16:])

    def next_epoch(self):
        """Raise the nonce epoch and make it durable before any nonce of it is issued."""
        e = self.epoch + 1
        self._append(_REC_EPOCH, d0=e & 0xFFFF, d1=e >> 16)
        return e

    def maybe_compact(self):
        return False  # the ring snapshots by itself when it enters a block (_room)

    # ----- replay ----------------------------------------------------------------------------------
    def _apply(self, rtype, flags, txid, aux, d0, d1, d2, d3, x):
        tx = self.open_tx
        if rtype == _REC_CASSETTES:
            v = struct.unpack("<4H4H", aux)
            for i in range(4):
                self.denoms[i] = v[i]
                self.counts[i] = v[4 + i]
            self.reject_bin = d0
            self.retract_bin = d1
            return
        if rtype == _REC_PURGED:
            self.reject_bin += d0
            self.retract_bin += d1
            if d2 < 4:
                self.counts[d2] = max(0, self.counts[d2] - d0 - d1)
            return
        if rtype == _REC_COUNTED:  # the count of older firmware: one record at its end
            self.counts[d0] = 0
            self.reject_bin += d1
            return
        k = self.count
        if rtype == _REC_COUNT:
            self.count = Count(d0)
            return
        if rtype == _REC_SNAP_COUNT:
            k = Count(d0)
            k.stacked = d1
            k.last_n = d2
            k.phase = d3 & 0xFF
            k.rstage = d3 >> 8
            k.rdump = x
            self.count = k
            return
        if k is not None and tx is None and rtype >= REC_COUNT_NOTE and rtype <= _REC_RSTACKED:
            if rtype == REC_COUNT_NOTE:
                self.counts[d0] = max(0, self.counts[d0] - d1)
                self.reject_bin += d1
                k.stacked += d1
                k.last_n = d1
                k.total += d1
                k.phase = rtype
            elif rtype == _REC_COUNT_DUMPED:
                k.stacked = 0
                k.phase = rtype
            elif rtype == _REC_COUNT_END:
                if d1:
                    self.counts[d0] = 0
                self.count = None
            else:
                self._recovery(k, rtype, d0, d1, d2)
            return
        if rtype == _REC_KEY:
            self.key = bytes(txid) + bytes(aux)
            return
        if rtype == _REC_EPOCH:
            self.epoch = d0 | (d1 << 16)
            return
        if rtype == REC_BEGIN:
            self.open_tx = Tx(bytes(txid), bytes(aux), [d0, d1, d2, d3])
            return
        if rtype == _REC_SNAP_TX:
            t = Tx(bytes(txid), bytes(aux), [d0, d1, d2, d3])
            t.stacked = [d0, d1, d2, d3]
            t.flags = flags
            t.present_status = x
            t.phase = _REC_END
            self._remember(t)
            return
        if rtype == _REC_SNAP_TX2:
            t = _unpack_done(self.recent[-1]) if self.recent else None
            if t is not None and t.txid == bytes(txid):
                v = struct.unpack("<8H", aux)
                t.rejected_by = [v[0], v[1], v[2], v[3]]
                t.presented = v[4]
                t.retracted = v[5]
                t.rejected = v[6]
                self.recent[-1] = t.pack()
            return
        if tx is None or bytes(txid) != tx.txid:
            return
        if rtype == _REC_SNAP_OPEN:
            v = struct.unpack("<8H", aux)
            tx.stacked = [v[0], v[1], v[2], v[3]]
            tx.rejected_by = [v[4], v[5], v[6], v[7]]
            tx.rejected = d0
            tx.phase = d1 & 0xFF
            tx.empty = d1 >> 8
            tx.retracted = d2
            tx.presented = d3
            tx.last_dest = flags & 0x0F
            tx.rstage = flags >> 4
            tx.last_n = x & 0xFF
            tx.rdump = x >> 8
            return
        if rtype >= _REC_RECOVER and rtype <= _REC_RSTACKED:
            self._recovery(tx, rtype, d0, d1, d2)  # the transaction's phase stays what it was
            return
        tx.phase = rtype
        if rtype == REC_PICKED:
            self._apply_picked(tx, d0, d1, d2)
        elif rtype == REC_EMPTY:
            self.counts[d0] = 0
            tx.empty |= 1 << d0
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
        elif rtype == _REC_SETTLE:
            if d1 < 4:
                self.counts[d1] = max(0, self.counts[d1] - d0)
            self.reject_bin += d0 + d2
            self.retract_bin += d3
            tx.rejected += d0 + d2
            tx.retracted += d3
        elif rtype == _REC_END:
            tx.rstage = RS_NONE
            tx.rdump = 0
            tx.present_status = d0
            tx.presented = d1
            tx.retracted = d2
            tx.rejected = d3
            tx.flags = flags
            self.open_tx = None
            self._remember(tx)

    def _apply_picked(self, tx, cassette, notes, dest):
        tx.phase = REC_PICKED
        tx.last_n = notes
        tx.last_dest = dest
        c = self.counts
        c[cassette] = max(0, c[cassette] - notes)
        if dest == DEST_STACKER:
            tx.stacked[cassette] += notes
        else:
            tx.rejected += notes
            tx.rejected_by[cassette] += notes
            self.reject_bin += notes

    def _recovery(self, t, rtype, d0, d1, d2):
        """A recovery record of the open transaction or count `t`."""
        if rtype == _REC_RECOVER:
            t.rstage = _RS_MOVING
        elif rtype == _REC_RDUMPED:
            t.rstage = RS_DUMPED
            t.rdump = d0
            if isinstance(t, Tx):
                # Every note the transaction stacked ends in the reject bin (the last one may still be
                # at the gate: recovery runs it through the stacker next).
                n = t.stacked[0] + t.stacked[1] + t.stacked[2] + t.stacked[3]
                t.rejected += n
                self.reject_bin += n
            # (a count's notes were booked into the reject bin one by one; its stacked figure stays, to
            # tell whether its last pick had left the gate)
        elif rtype == _REC_RSTACKED:
            t.rstage = RS_STACKED
            if d1 < 4:
                self.counts[d1] = max(0, self.counts[d1] - d0)
            self.reject_bin += d0
            if isinstance(t, Tx):
                t.rejected += d0

    def _remember(self, tx):
        for i in range(len(self.recent)):
            if _txid_is(self.recent[i], tx.txid):
                self.recent.pop(i)
                break
        self.recent.append(tx.pack())
        if len(self.recent) > _RECENT_MAX:
            self.recent.pop(0)

    def find(self, txid):
        if self.open_tx is not None and self.open_tx.txid == txid:
            return self.open_tx
        for packed in self.recent:
            if _txid_is(packed, txid):
                return _unpack_done(packed)
        return None

    def _replay_page(self, p, n):
        for k in range(n):
            v = struct.unpack_from(_FMT, p, _HDR + k * _REC_SIZE)
            self._seq = (v[2] + 1) & 0xFFFF
            self._apply(v[0], v[1], v[3], v[4], v[5], v[6], v[7], v[8], v[9])

    def _block_seq(self, block):
        """The sequence number of a valid block, or -1."""
        p = self._read_page(block, 0)
        if self._page_ok(p) != 0 or p[1] != _K_HEAD:
            return -1
        return struct.unpack_from("<I", p, 4)[0]

    def _snapshot_end(self, block, bseq):
        """Pages 1.. of the block hold a complete snapshot: the page after its _K_SNAP_END, else 0."""
        for page in range(1, _PAGES):
            p = self._read_page(block, page)
            if self._page_ok(p) < 0 or struct.unpack_from("<I", p, 4)[0] != bseq:
                return 0
            if p[1] == _K_SNAP_END:
                return page + 1
            if p[1] != _K_SNAP:
                return 0
        return 0

    def load(self):
        """Rebuild the state from the flash; format the region on the very first boot. Returns the
        number of records replayed (0 on a first boot)."""
        order = []  # (bseq, block) of valid blocks, oldest first
        for b in range(RAW_BLOCKS):
            s = self._block_seq(b)
            if s < 0:
                continue
            i = len(order)
            while i > 0 and order[i - 1][0] > s:
                i -= 1
            order.insert(i, (s, b))
        start = -1
        first_page = 0
        for i in range(len(order) - 1, -1, -1):
            first_page = self._snapshot_end(order[i][1], order[i][0])
            if first_page:
                start = i
                break
        if start < 0:
            # First boot (or nothing complete was ever written): an empty machine until REPLENISH.
            last = order[-1] if order else (-1, -1)
            self._head = last[1]
            self._bseq = last[0] + 1 if order else 1
            self._enter_block(0 if last[1] < 0 else (last[1] + 1) % RAW_BLOCKS, self._bseq)
            self._write_snapshot()
            return 0
        replayed = 0
        for i in range(start, len(order)):
            bseq, block = order[i]
            used = 1
            for pg in range(1, _PAGES):
                p = self._read_page(block, pg)
                n = self._page_ok(p)
                if n < 0 or struct.unpack_from("<I", p, 4)[0] != bseq:
                    if not self._erased(p):
                        used = pg + 1
                        self.torn_pages += 1
                    continue
                used = pg + 1
                kind = p[1]
                if kind == _K_LOG or (i == start and pg < first_page):
                    self._replay_page(p, n)
                    replayed += n
            self._head = block
            self._bseq = bseq
            self._next_page = used
        self._snap_bseq = order[start][0]
        return replayed
