"""Double-entry ledger: every movement is an entry whose legs sum to zero; one entry per (txid, kind).

Ledger accounts: customer:<account_id> (what the bank owes the customer), hold:<account_id> (reserved
for an approved withdrawal), cash_paid:<atm_id> (notes that left the ATM), suspense:<atm_id> (present
state unknown, waiting for reconciliation).
"""

from .db import Cursor
from .errors import StoreError


def post(cur: Cursor, txid: str, kind: str, legs: list[tuple[str, int]], now_ms: int) -> None:
    """Write one balanced entry; a repeated (txid, kind) hits the unique index instead of posting twice."""
    if sum(amount for _, amount in legs) != 0:
        raise StoreError(f"unbalanced entry {txid}/{kind}: {legs}")
    entry_id = f"{txid}:{kind}"
    # All legs in one statement: the entry is written whole or (unique index hit) not at all.
    values = ",".join(["(?,?,?,?,?,?)"] * len(legs))
    params: list[object] = []
    for account, amount in legs:
        params += (entry_id, txid, kind, account, amount, now_ms)
    cur.w(
        f"INSERT INTO journal (entry_id, txid, kind, ledger_account, amount, at_ms) VALUES {values}", params
    )


def reserve(cur: Cursor, txid: str, account_id: int, amount: int, now_ms: int) -> None:
    post(cur, txid, "reserve", [(f"customer:{account_id}", -amount), (f"hold:{account_id}", amount)], now_ms)


def debit(cur: Cursor, txid: str, *, account_id: int, atm_id: str, amount: int, now_ms: int) -> None:
    post(cur, txid, "debit", [(f"hold:{account_id}", -amount), (f"cash_paid:{atm_id}", amount)], now_ms)


def reverse(cur: Cursor, txid: str, account_id: int, amount: int, now_ms: int) -> None:
    post(cur, txid, "reverse", [(f"hold:{account_id}", -amount), (f"customer:{account_id}", amount)], now_ms)


def to_suspense(cur: Cursor, txid: str, *, account_id: int, atm_id: str, amount: int, now_ms: int) -> None:
    post(cur, txid, "suspect", [(f"hold:{account_id}", -amount), (f"suspense:{atm_id}", amount)], now_ms)


def settle_suspense(
    cur: Cursor, txid: str, *, account_id: int, atm_id: str, amount: int, paid: int, now_ms: int
) -> None:
    """Clear a suspect transaction: paid goes to cash_paid, the rest back to the customer."""
    legs = [(f"suspense:{atm_id}", -amount), (f"cash_paid:{atm_id}", paid)]
    if amount - paid:
        legs.append((f"customer:{account_id}", amount - paid))
    post(cur, txid, "settle", [leg for leg in legs if leg[1] != 0] or [(f"suspense:{atm_id}", 0)], now_ms)


def check_balanced(cur: Cursor) -> list[str]:
    """Every problem found: unbalanced entries, holds that differ from reserved transactions."""
    problems: list[str] = []
    for entry_id, total in cur.q("SELECT entry_id, SUM(amount) FROM journal GROUP BY entry_id"):
        if int(total) != 0:
            problems.append(f"entry {entry_id} sums to {total}")
    holds: dict[str, int] = {}
    for account, total in cur.q(
        "SELECT ledger_account, SUM(amount) FROM journal "
        "WHERE ledger_account LIKE 'hold:%' GROUP BY ledger_account"
    ):
        holds[str(account)] = int(total)
    reserved: dict[str, int] = {}
    for account_id, total in cur.q(
        "SELECT account_id, SUM(amount) FROM txns WHERE state = 'reserved' GROUP BY account_id"
    ):
        reserved[f"hold:{account_id}"] = int(total)
    for account in set(holds) | set(reserved):
        if holds.get(account, 0) != reserved.get(account, 0):
            problems.append(
                f"{account} holds {holds.get(account, 0)}, reserved txns {reserved.get(account, 0)}"
            )
    for (total,) in cur.q("SELECT COALESCE(SUM(amount), 0) FROM journal"):
        if int(total) != 0:
            problems.append(f"journal sums to {total}")
    return problems


def balances(cur: Cursor) -> dict[str, int]:
    """Balance of every ledger account."""
    return {
        str(a): int(t)
        for a, t in cur.q("SELECT ledger_account, SUM(amount) FROM journal GROUP BY ledger_account")
    }
