"""Layering: the ATM host and the console speak the contract (atm_msg), never the bank's package."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package folder -> top-level packages its source must never import
FORBIDDEN = {
    "host/atm_host": {"atm_bank", "atm_console"},
    "console/atm_console": {"atm_bank", "atm_host"},
    "protocol/atm_msg": {"atm_bank", "atm_host", "atm_console", "atm_tools", "atm_sim"},
}


def imported_packages(source: str) -> set[str]:
    """Top-level names of every absolute import in the source, including imports inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_walker_sees_every_kind_of_import() -> None:
    source = (
        "import atm_bank.core\n"
        "from atm_host import x\n"
        "from . import local\n"
        "def f():\n"
        "    import atm_console.web as w\n"
        "    from atm_tools.demo import y\n"
    )
    assert imported_packages(source) == {"atm_bank", "atm_host", "atm_console", "atm_tools"}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_no_forbidden_package(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}"
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in sorted(imported_packages(path.read_text()) & FORBIDDEN[package])
    ]
    assert not offenders, "\n".join(offenders)


def test_the_bank_package_no_longer_holds_the_contract() -> None:
    moved = ("schemas", "topics", "reasons", "qrtoken", "cmdsign", "denominate", "broker")
    left = [m for m in moved if (ROOT / "bank/atm_bank" / f"{m}.py").exists()]
    assert not left, f"contract modules still in bank/atm_bank: {left}"
    assert not (ROOT / "console/atm_console/cmdsign.py").exists(), "the console keeps a second cmdsign"
