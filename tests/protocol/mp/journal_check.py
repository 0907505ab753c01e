"""The firmware journal under a power cut at every flash operation, on MicroPython.

Run: micropython tests/protocol/mp/journal_check.py <repo root> [calls] [tear ...]
A scripted life of the machine (replenish, provisioning, boots, dispenses with double picks, presents,
takes, retracts, rejects, counts, boot recoveries of a dispense and of a count) long enough to wrap
the raw ring several times, with snapshots.
For every flash operation k of it (erase or page program) and every tear (bytes written before the
power fails; -1: the operation never starts), the script is run on a NOR flash model that dies at
k; the journal is then replayed from that flash and must equal the state after the calls that
completed, or after one more (the cut fell after its record was durable). Then the machine goes on
from the replayed state and must still replay correctly. Prints one summary line; exit 1 on a miss.
"""

# pyright: basic, reportMissingImports=false

import sys

sys.path.insert(0, sys.argv[1] + "/protocol")
sys.path.insert(0, sys.argv[1] + "/firmware")

import journal as j
from layout import BLOCK_SIZE, PAGE_SIZE, RAW_BLOCKS


class PowerCutError(Exception):
    pass


class Nor:
    """RAW_BLOCKS x 4 KiB of NOR flash: erase to 0xFF, program = AND on whole pages; dies at op `cut`."""

    def __init__(self, cut=0, tear=-1):
        self.mem = bytearray(b"\xff" * (RAW_BLOCKS * BLOCK_SIZE))
        self.ops = 0
        self.cut = cut
        self.tear = tear
        self.reprograms = 0

    def _op(self):
        self.ops += 1
        return self.cut and self.ops == self.cut

    def readblocks(self, b, buf, offset=0):
        a = b * BLOCK_SIZE + offset
        buf[:] = self.mem[a : a + len(buf)]

    def writeblocks(self, b, buf, offset=None):
        assert offset is not None and offset % PAGE_SIZE == 0 and len(buf) % PAGE_SIZE == 0
        a = b * BLOCK_SIZE + offset
        n = len(buf)
        if self._op():
            if self.tear >= 0:
                for i in range(min(self.tear, n)):
                    self.mem[a + i] &= buf[i]
            raise PowerCutError()
        for i in range(n):
            if buf[i] != 0xFF and self.mem[a + i] != 0xFF:
                self.reprograms += 1
            self.mem[a + i] &= buf[i]

    def ioctl(self, op, arg=0):
        if op == 6:
            a = arg * BLOCK_SIZE
            if self._op():
                if self.tear >= 0:
                    for i in range(min(self.tear * 16, BLOCK_SIZE)):
                        self.mem[a + i] = 0xFF
                raise PowerCutError()
            for i in range(BLOCK_SIZE):
                self.mem[a + i] = 0xFF
            return 0
        return BLOCK_SIZE if op == 5 else RAW_BLOCKS


def txid(i):
    return bytes((i & 0xFF, (i >> 8) & 0xFF)) + bytes(14)


def script(n):
    """The machine's life as journal calls: (name, args) tuples."""
    out: list[tuple[str, tuple[object, ...]]] = [("set_cassettes", ([100, 50, 20, 10], [900, 900, 900, 900]))]
    out.append(("set_key", (bytes(range(32)),)))
    i = 0
    while len(out) < n:
        i += 1
        t = txid(i)
        if i % 11 == 0:
            out.append(("next_epoch", ()))  # a boot
        notes = [1 + i % 3, i % 2, 0, 1 if i % 5 == 0 else 0]
        out.append(("begin", (t, bytes(16), notes)))
        for c in range(4):
            for k in range(notes[c]):
                if (i + k) % 7 == 0:
                    out.append(("picked", (c, 2, j.DEST_REJECT)))
                    out.append(("diverted", ()))
                out.append(("picked", (c, 1, j.DEST_STACKER)))
        way = i % 4
        if i % 13 == 0:
            # A power cut mid-dispense: boot recovery empties the stacker, books the pick that was
            # under way, then closes the transaction.
            out.append(("recover", ()))
            out.append(("rdumped", (sum(notes),)))
            out.append(("rstacked", (1, 0, 1)))
            out.append(("end", (0, 5)))
        elif way == 0:
            out.append(("mark", (j.REC_REJECT,)))
            out.append(("rejected", (sum(notes),)))
            out.append(("end", (0, 1)))
        elif way == 3:
            out.append(("mark", (j.REC_PRESENT,)))
            out.append(("mark", (j.REC_RETRACT,)))
            out.append(("mark", (j.REC_RETRACTED, sum(notes))))
            out.append(("end", (1, 1)))
        else:
            out.append(("mark", (j.REC_PRESENT,)))
            out.append(("end", (1, 3)))
        if i % 9 == 0:
            out.append(("purged", (1, 0)))
        if i % 17 == 0:
            out.append(("count_begin", (3,)))
            out.append(("count_note", (3, 1)))
            out.append(("count_note", (3, 2)))
            if i % 34 == 0:
                out.append(("count_dumped", (3,)))
                out.append(("count_end", (3, True)))
            else:  # a cut: recovery settles the count
                out.append(("recover", ()))
                out.append(("rdumped", (3,)))
                out.append(("rstacked", (1, 3, 1)))
                out.append(("count_end", (3, False)))
    return out[:n]


_progress = [0]


def run(jr, calls, start=0):
    """Make the calls from `start` on; _progress[0] counts those that returned (also after a cut)."""
    _progress[0] = start
    for name, args in calls[start:]:
        getattr(jr, name)(*args)
        _progress[0] += 1
    return _progress[0]


def state(jr):
    def tx(t):
        if t is None:
            return None
        return (
            t.txid,
            t.nonce,
            list(t.requested),
            list(t.stacked),
            t.rejected,
            list(t.rejected_by),
            t.presented,
            t.retracted,
            t.present_status,
            t.flags,
            t.empty,
            t.rstage,
            t.rdump,
        )

    k = jr.count
    count = None if k is None else (k.cassette, k.stacked, k.last_n, k.phase, k.rstage, k.rdump)

    return (
        list(jr.denoms),
        list(jr.counts),
        jr.reject_bin,
        jr.retract_bin,
        jr.key,
        jr.epoch,
        tx(jr.open_tx),
        [tx(j._unpack_done(t)) for t in jr.recent],
        count,
    )


def reference(calls):
    """The in-memory state after each prefix of the calls (index m: after m calls)."""
    jr = j.Journal(Nor())
    jr.load()
    out = [state(jr)]
    for name, args in calls:
        getattr(jr, name)(*args)
        out.append(state(jr))
    return out, jr


def main():
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    tears = [int(t) for t in sys.argv[3:]] or [-1, 30]
    calls = script(n)
    ref, full = reference(calls)
    dev = full._dev
    total = dev.ops
    # The uncut run, replayed, equals its own end state (and wraps the ring with snapshots).
    again = j.Journal(dev)
    again.load()
    assert state(again) == ref[-1], "clean replay differs"
    assert dev.reprograms == 0, "a page was programmed twice"
    misses = 0
    runs = 0
    for tear in tears:
        for k in range(1, total + 1):
            nor = Nor(k, tear)
            jr = j.Journal(nor)
            _progress[0] = 0
            try:
                jr.load()
                run(jr, calls)
            except PowerCutError:
                pass
            done = _progress[0]
            runs += 1
            nor.cut = 0
            back = j.Journal(nor)
            back.load()
            got = state(back)
            if got != ref[done] and (done + 1 >= len(ref) or got != ref[done + 1]):
                misses += 1
                print("miss at op", k, "tear", tear, "after", done, "calls")
                continue
            # Life goes on from the replayed state: the rest of the calls, then a clean replay.
            rest = done if got == ref[done] else done + 1
            run(back, calls, rest)
            final = j.Journal(nor)
            final.load()
            if state(final) != ref[-1] or nor.reprograms:
                misses += 1
                print("after the cut at op", k, "tear", tear, "the rest does not replay")
    print(
        f"journal: {len(calls)} calls, {total} flash ops ({full.erases} erases), {runs} cuts, {misses} misses"
    )
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
