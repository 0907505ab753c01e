"""Turn an amount into notes per cassette within the ATM's reported counts (fewest notes first)."""

import functools
import heapq

from .errors import DenominationError


def representable(amount: int, denominations: list[int]) -> bool:
    """Whether some mix of the denominations (unbounded counts) makes exactly the amount.

    O(1) per call after one small table per denomination set (the old table up to the amount cost
    ~0.1 ms per 100 yuan, and a second per request for an amount of 1,000,000).
    """
    if amount <= 0:
        return False
    table = _smallest_per_residue(tuple(sorted(set(denominations))))
    if not table:
        return False
    smallest = table[amount % len(table)]
    return smallest is not None and smallest <= amount


@functools.lru_cache(maxsize=64)
def _smallest_per_residue(denominations: tuple[int, ...]) -> tuple[int | None, ...]:
    """For each residue r modulo the smallest note m: the smallest makeable amount that is r mod m.

    An amount is makeable exactly when it is at least that value for its residue (add notes of m).
    Dijkstra over the m residues, each note an edge.
    """
    notes = [d for d in denominations if d > 0]
    if not notes:
        return ()
    m = notes[0]
    best: list[int | None] = [None] * m
    best[0] = 0
    heap = [(0, 0)]
    while heap:
        value, residue = heapq.heappop(heap)
        if value != best[residue]:
            continue
        for d in notes[1:]:
            nxt = value + d
            r = nxt % m
            old = best[r]
            if old is None or nxt < old:
                best[r] = nxt
                heapq.heappush(heap, (nxt, r))
    return tuple(best)


def denominate(amount: int, denominations: list[int], counts: list[int], max_notes: int) -> list[int]:
    """Notes per cassette paying exactly amount, at most counts[i] from cassette i and max_notes in all.

    Depth-first from the largest denomination down with the largest count first, so the first mix found
    uses few notes; raises DenominationError when no mix exists.
    """
    if amount <= 0:
        raise DenominationError(f"amount {amount} must be positive")
    order = sorted(range(len(denominations)), key=lambda i: -denominations[i])
    best: list[int] | None = None
    notes = [0] * len(denominations)

    def search(pos: int, rest: int, used: int) -> bool:
        nonlocal best
        if rest == 0:
            best = list(notes)
            return True
        if pos == len(order) or used >= max_notes:
            return False
        i = order[pos]
        d = denominations[i]
        top = min(counts[i], rest // d, max_notes - used)
        for n in range(top, -1, -1):
            notes[i] = n
            if search(pos + 1, rest - n * d, used + n):
                return True
        notes[i] = 0
        return False

    if not search(0, amount, 0) or best is None:
        raise DenominationError(f"{amount} yuan cannot be made from {denominations} x {counts}")
    return best
