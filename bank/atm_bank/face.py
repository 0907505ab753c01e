"""Face matching: cosine similarity of a probe against the enrolled template."""

import math


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity; 0.0 for vectors of different length or zero norm (never a match)."""
    if len(a) != len(b) or not a:
        return 0.0
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(math.fsum(x * x for x in a))
    nb = math.sqrt(math.fsum(y * y for y in b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return dot / (na * nb)
