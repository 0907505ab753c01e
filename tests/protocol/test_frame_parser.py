"""FrameParser: resync after corruption, and a hypothesis fuzz run that must never raise."""

from __future__ import annotations

import random
from typing import Any

from atm_wire.frame import FLAG_DATA, MAX_PAYLOAD, MIN_FRAME, FrameParser, encode
from hypothesis import given, settings
from hypothesis import strategies as st


def parse(stream: bytes, chunk: int = 7) -> tuple[list[bytes], Any]:
    got: list[bytes] = []
    parser: Any = FrameParser()

    def on_frame(buf: bytearray, n: int) -> None:
        got.append(bytes(buf[:n]))

    for i in range(0, len(stream), chunk):
        part = stream[i : i + chunk]
        parser.feed(part, len(part), on_frame)
    return got, parser


def test_resync_after_random_corruption() -> None:
    rng = random.Random(1234)
    frames = [
        encode(i & 0xFF, 0, FLAG_DATA, bytes(rng.randrange(256) for _ in range(rng.randrange(60))))
        for i in range(400)
    ]
    stream = bytearray()
    damaged: set[int] = set()
    for i, f in enumerate(frames):
        b = bytearray(f)
        if rng.random() < 0.1:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            damaged.add(i)
        stream += b
    got, parser = parse(bytes(stream))
    intact = [f for i, f in enumerate(frames) if i not in damaged]
    assert set(got) <= set(frames)  # nothing invented
    # Every intact frame after a damaged one may be lost while resyncing, but most must survive.
    assert len(got) >= 0.8 * len(intact)
    assert parser.crc_errors > 0
    # Whatever state the damage left, clean traffic realigns within one maximal frame (255 bytes).
    clean = encode(7, 7, FLAG_DATA, b"0123456789abc")
    tail, _ = parse(bytes(stream) + clean * 40)
    assert tail[-10:] == [clean] * 10


def test_bytes_below_min_frame_are_skipped() -> None:
    frame = encode(1, 2, FLAG_DATA, b"abc")
    got, parser = parse(bytes(range(MIN_FRAME)) + frame)
    assert got == [frame] and parser.bad_length == MIN_FRAME


def test_stray_sync_byte_does_not_swallow_next_frames() -> None:
    # frame.py says bytes below MIN_FRAME "also swallow stray SYNC bytes", but 0x7E >= MIN_FRAME: a
    # lone 0x7E (e.g. the tail of a frame cut by a reset) makes the parser wait for 126 bytes.
    frame = encode(0, 0, FLAG_DATA, b"hello")
    got, _ = parse(b"\x7e" + frame)
    assert got == [frame]


@given(st.lists(st.binary(max_size=300), max_size=30), st.integers(1, 64))
@settings(max_examples=300, deadline=None)
def test_fuzz_random_bytes_never_raise(chunks: list[bytes], size: int) -> None:
    got, parser = parse(b"".join(chunks), size)
    for f in got:  # anything accepted is a well-formed frame
        assert f[0] == len(f) and f[-1] == 0x7E and len(f) - 7 <= MAX_PAYLOAD
    assert parser.frames_ok == len(got)


@given(
    st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=80)), min_size=1, max_size=20),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=5),
)
@settings(max_examples=300, deadline=None)
def test_fuzz_mutated_frames(frames: list[tuple[int, bytes]], flips: list[tuple[int, int]]) -> None:
    encoded = [encode(seq, 0, FLAG_DATA, p) for seq, p in frames]
    stream = bytearray(b"".join(encoded))
    for pos, val in flips:
        stream[pos % len(stream)] = val
    clean = encode(9, 9, FLAG_DATA, b"0123456789abc")
    got, _ = parse(bytes(stream) + clean * 40, 5)
    for f in got:
        assert f[0] == len(f) and f[-1] == 0x7E
    assert got[-10:] == [clean] * 10  # realigned
    if not flips:
        assert got == [*encoded, *([clean] * 40)]


def test_implausible_byte_right_after_a_frame_in_the_same_read() -> None:
    # A good frame, then a byte that cannot be a length (> MAX_FRAME), then 200 bytes of noise and a
    # good frame, all in one read: the parser must neither overrun its buffer nor lose the last frame.
    a = encode(1, 0, FLAG_DATA, b"first")
    b = encode(2, 0, FLAG_DATA, b"second")
    noise = bytes((i * 37 + 11) & 0x7F for i in range(200))
    got, _ = parse(a + b"\xc8" + noise + b, chunk=4096)
    assert got[0] == a and got[-1] == b


def test_garbage_in_front_of_every_frame_costs_no_frame() -> None:
    rng = random.Random(11)
    frames = [encode(i & 0xFF, 0, FLAG_DATA, bytes((2, i & 0xFF, 0))) for i in range(200)]
    stream = b"".join(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 24))) + f for f in frames)
    for chunk in (1, 7, 64, 4096):
        got, _ = parse(stream, chunk)
        assert [f for f in got if f in frames] == frames, chunk
