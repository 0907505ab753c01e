"""Turn an amount into notes per cassette within the ATM's reported counts (fewest notes first)."""

from .errors import DenominationError


def representable(amount: int, denominations: list[int]) -> bool:
    """Whether some mix of the denominations (unbounded counts) makes exactly the amount."""
    if amount <= 0:
        return False
    reach = [False] * (amount + 1)
    reach[0] = True
    for value in range(1, amount + 1):
        reach[value] = any(d <= value and reach[value - d] for d in denominations)
    return reach[amount]


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
