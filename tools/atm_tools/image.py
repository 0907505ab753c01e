"""The board image: firmware/manifest.py compiled with mpy-cross into a tree, and its littlefs image.

One builder for every target: the simulated unix board copies the tree into its flash file, the
emulated RP2040 and `./atm flash --uf2` use the littlefs image, `./atm flash --port` writes its blocks.

The littlefs image has the rp2 port's geometry (4096-byte blocks, FS_BLOCKS blocks, prog size 256,
at flash offset 0xA0000). It is built on the first RAW_FIRST_BLOCK blocks and then grown to
FS_BLOCKS, so every block littlefs uses lies below the raw state region (firmware/layout.py); the
build fails if one does not.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from littlefs import LittleFS, UserContext

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO / "firmware"
MANIFEST = FIRMWARE_DIR / "manifest.py"
LAYOUT = FIRMWARE_DIR / "layout.py"

FS_FLASH_OFFSET = 0xA0000  # the rp2 port's filesystem offset in flash (RPI_PICO, 2 MiB part)
XIP_BASE = 0x10000000
PROG_SIZE = 256
NOT_IN_IMAGE = ("manifest.py", "pyrightconfig.json")


class ImageError(Exception):
    """The board image could not be built or does not fit the flash layout."""


@dataclass(frozen=True)
class Layout:
    """The flash layout the firmware declares in firmware/layout.py."""

    block_size: int
    fs_blocks: int
    raw_first_block: int
    raw_blocks: int

    @property
    def raw_offset(self) -> int:
        """Flash offset of the raw state region."""
        return FS_FLASH_OFFSET + self.raw_first_block * self.block_size


@dataclass(frozen=True)
class Entry:
    """One module of the manifest: its source and its path on the board (without suffix)."""

    source: Path
    board_path: str


def read_layout(path: Path = LAYOUT) -> Layout:
    """The const() values of firmware/layout.py (read as source: it imports micropython)."""
    values: dict[str, int] = {}
    for node in ast.parse(path.read_text()).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        if isinstance(value, ast.Call) and value.args and isinstance(target, ast.Name):
            arg = value.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, int):
                values[target.id] = arg.value
    try:
        lay = Layout(
            values["BLOCK_SIZE"], values["FS_BLOCKS"], values["RAW_FIRST_BLOCK"], values["RAW_BLOCKS"]
        )
    except KeyError as exc:
        raise ImageError(f"{path}: missing const {exc}") from exc
    if lay.raw_first_block + lay.raw_blocks != lay.fs_blocks or lay.block_size != 4096:
        raise ImageError(f"{path}: the raw region must be the last blocks of 4096-byte storage: {lay}")
    return lay


def read_manifest(path: Path = MANIFEST) -> list[Entry]:
    """Run the manifest with micropython-lib's module()/package() and list what it puts on the board."""
    entries: list[Entry] = []
    base = path.parent

    def module(name: str, base_path: str = ".") -> None:
        src = (base / base_path / name).resolve()
        if not src.is_file():
            raise ImageError(f"{path}: module {name} not found at {src}")
        entries.append(Entry(src, src.stem))

    def package(name: str, base_path: str = ".") -> None:
        root = (base / base_path / name).resolve()
        if not root.is_dir():
            raise ImageError(f"{path}: package {name} not found at {root}")
        for src in sorted(root.rglob("*.py")):
            rel = src.relative_to(root.parent).with_suffix("")
            entries.append(Entry(src, "lib/" + rel.as_posix()))

    code = compile(path.read_text(), str(path), "exec")
    exec(code, {"module": module, "package": package, "__file__": str(path)})
    listed = {e.source for e in entries}
    missing = [
        p.name for p in sorted(base.glob("*.py")) if p.name not in NOT_IN_IMAGE and p.resolve() not in listed
    ]
    if missing:
        raise ImageError(
            f"{path}: firmware modules not in the manifest (the board would lack them): {missing}"
        )
    return entries


def _mpy_cross() -> str:
    local = Path(sys.executable).parent / "mpy-cross"
    if local.exists():
        return str(local)
    found = shutil.which("mpy-cross")
    if found is None:
        raise ImageError("mpy-cross not found: run ./atm setup (it installs the pinned MicroPython tools)")
    return found


def _with_baud(src: Path, dest_dir: Path, baud: int) -> Path:
    """A copy of hwconfig.py with _UART_BAUD set to `baud` (the benchmark's line-rate variant)."""
    text, n = re.subn(r"_UART_BAUD = const\(\d+\)", f"_UART_BAUD = const({baud})", src.read_text())
    if n != 1:
        raise ImageError(f"{src}: no '_UART_BAUD = const(...)' to set the line rate")
    out = dest_dir / src.name
    out.write_text(text)
    return out


def build_tree(
    dest: Path, march: str | None = None, compile_mpy: bool = True, uart_baud: int | None = None
) -> Path:
    """Stage the manifest as it sits on the board: main.py as source, every other module as .mpy.

    `march` is mpy-cross's -march (armv6m for the RP2040, x64 for the unix sim board); it matters only
    for @micropython.native/viper code, the bytecode is the same either way. `uart_baud` builds the
    variant with another hwconfig._UART_BAUD (the benchmark's 921600 run); None: the firmware as it is.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    tool = _mpy_cross() if compile_mpy else ""
    staged = dest.parent / (dest.name + ".src")
    staged.mkdir(exist_ok=True)
    for entry in read_manifest():
        e = entry
        if uart_baud is not None and e.board_path == "hwconfig":
            e = Entry(_with_baud(e.source, staged, uart_baud), e.board_path)
        out = dest / e.board_path
        out.parent.mkdir(parents=True, exist_ok=True)
        if not compile_mpy or e.board_path == "main":
            shutil.copy(e.source, out.with_suffix(".py"))
            continue
        # -O3: no line numbers and no asserts in the bytecode (~7% less code on the chip's heap;
        # the firmware reports faults by name, not by traceback).
        args = [tool, "-O3", "-o", str(out.with_suffix(".mpy")), "-s", e.source.name]
        if march:
            args.append(f"-march={march}")
        res = subprocess.run([*args, str(e.source)], check=False, capture_output=True, text=True)
        if res.returncode != 0:
            raise ImageError(f"mpy-cross failed on {e.source}: {res.stderr.strip()}")
    shutil.rmtree(staged)
    return dest


def _used_blocks(buf: bytes, block_size: int) -> list[int]:
    """Blocks holding anything but the erased state (a superset of what littlefs references)."""
    blank = b"\xff" * block_size
    return [b for b in range(len(buf) // block_size) if buf[b * block_size : (b + 1) * block_size] != blank]


def check_blocks(buf: bytes, lay: Layout) -> list[int]:
    """The written blocks of a littlefs image; ImageError if one lies in the raw state region."""
    used = _used_blocks(buf, lay.block_size)
    bad = [b for b in used if b >= lay.raw_first_block]
    if bad:
        raise ImageError(f"littlefs blocks {bad} lie in the raw state region (from {lay.raw_first_block})")
    return used


def build_littlefs(tree: Path, lay: Layout | None = None) -> bytes:
    """A littlefs image of `tree` with the rp2 port's geometry, every used block below the raw region."""
    lay = read_layout() if lay is None else lay
    ctx = UserContext(lay.block_size * lay.fs_blocks)
    fs = LittleFS(
        context=ctx, block_size=lay.block_size, block_count=lay.raw_first_block, prog_size=PROG_SIZE
    )
    for src in sorted(tree.rglob("*")):
        rel = src.relative_to(tree).as_posix()
        if src.is_dir():
            fs.makedirs(rel, exist_ok=True)
            continue
        with cast(IO[bytes], fs.open(rel, "wb")) as f:  # pyright: ignore[reportUnknownMemberType]
            f.write(src.read_bytes())
    fs.fs_grow(lay.fs_blocks)  # the superblock now says FS_BLOCKS: the rp2 port's _boot.py mounts it
    fs.unmount()
    buf = bytes(ctx.buffer)
    check_blocks(buf, lay)
    check = LittleFS(context=ctx, block_size=lay.block_size, block_count=lay.fs_blocks, prog_size=PROG_SIZE)
    for src in tree.rglob("*"):
        if src.is_file():
            opened = cast(IO[bytes], check.open(src.relative_to(tree).as_posix(), "rb"))  # pyright: ignore[reportUnknownMemberType]
            with opened as f:
                if f.read() != src.read_bytes():
                    raise ImageError(f"littlefs read-back differs for {src}")
    check.unmount()
    return buf


@dataclass(frozen=True)
class BoardImage:
    """A built image: the tree, its littlefs bytes and the blocks they occupy."""

    tree: Path
    littlefs: bytes
    used_blocks: list[int]
    layout: Layout


def build(dest: Path, march: str | None = "armv6m", uart_baud: int | None = None) -> BoardImage:
    """Build the tree under dest/tree and its littlefs image (dest/littlefs.img)."""
    lay = read_layout()
    tree = build_tree(dest / "tree", march=march, uart_baud=uart_baud)
    buf = build_littlefs(tree, lay)
    (dest / "littlefs.img").write_bytes(buf)
    return BoardImage(tree, buf, check_blocks(buf, lay), lay)


def main() -> int:
    out = REPO / "build" / "board"
    img = build(out)
    print(
        f"board image: {sum(1 for p in img.tree.rglob('*') if p.is_file())} files, "
        f"{len(img.used_blocks)} littlefs blocks used (last {max(img.used_blocks)}), "
        f"raw region blocks {img.layout.raw_first_block}..{img.layout.fs_blocks - 1} untouched -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
