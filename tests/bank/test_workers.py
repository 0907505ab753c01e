"""Several bank workers on one shared subscription: kill one mid-load, every request answered once."""

import os
import signal
import threading
import time
from pathlib import Path

from atm_bank import ledger
from atm_bank.db import Cursor, open_database
from atm_host.banklink.client import BankLink
from atm_host.banklink.outbox import Outbox
from atm_host.banklink.settings import LinkSettings
from atm_msg import topics
from atm_msg.schemas import AuthResponse, Cassette
from atm_tools.bench_bank import DENOMS, make_requests, prepare, start_worker, start_workers, wait_online
from atm_tools.mosquitto import Mosquitto

from .mqtt_helpers import Listener, wait_for

N_WORKERS = 3
N_ATMS = 6
PER_ATM = 25


def test_kill_a_worker_mid_load(broker: Mosquitto, tmp_path: Path) -> None:
    setup = prepare(tmp_path / "bank", N_ATMS, 12)
    setup.db_url += "?synchronous=NORMAL"
    procs = start_workers(setup, broker.port, N_WORKERS)
    reqs = make_requests(setup, N_ATMS * PER_ATM)
    answers: dict[str, AuthResponse] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    cassettes = [Cassette(denomination=d, count=60000) for d in DENOMS]
    links: list[BankLink] = []
    for atm, dev in setup.atms:
        s = LinkSettings(atm_id=atm, device_id=dev, port=broker.port, retry_s=0.5)
        link = BankLink(s, Outbox(tmp_path / f"{atm}.db"), cassettes)
        link.start()
        assert link.wait_connected()
        links.append(link)
    by_atm = {atm: [r for a, r in reqs if a == atm] for atm, _ in setup.atms}

    def drive(link: BankLink) -> None:
        try:
            for r in by_atm[link.atm]:
                resp = link.authorize(r, timeout_s=30)
                with lock:
                    answers[r.request_id] = resp
        except BaseException as exc:  # reported below
            errors.append(exc)

    state_topic = f"{topics.BANK_STATE}/bench-worker-1"
    state = Listener(broker.port, [state_topic], client_id="test-worker-state")
    wait_for(lambda: state.received(state_topic)[-1:] == [b"online"], 10, "worker 1 online")
    threads = [threading.Thread(target=drive, args=(link,)) for link in links]
    for t in threads:
        t.start()
    while len(answers) < len(reqs) // 3:
        time.sleep(0.01)
    os.kill(procs[1].pid, signal.SIGKILL)  # mid-load, no goodbye
    procs[1].wait()
    # Not a sleep: the broker has seen the killed worker's connection drop once its will (retained
    # "offline") is out; only then can wait_online below tell the new worker's "online" from the old.
    wait_for(lambda: state.received(state_topic)[-1:] == [b"offline"], 10, "the killed worker's will")
    procs[1] = start_worker(setup, broker.port, 1)  # what `serve` does: same name, same session
    wait_online(broker.port, ["bench-worker-1"])
    for t in threads:
        t.join(120)
    state.close()
    for link in links:
        link.stop()
    for p in procs:
        p.terminate()
        p.wait(10)
    assert not errors, errors
    assert len(answers) == len(reqs)
    assert all(a.decision == "approve" for a in answers.values()), {a.reason for a in answers.values()}

    db = open_database(setup.db_url)

    def check(cur: Cursor) -> tuple[int, int, int, list[str]]:
        req_rows = cur.one("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM requests")
        txns = cur.one("SELECT COUNT(*) FROM txns")
        assert req_rows and txns
        return int(req_rows[0]), int(req_rows[1]), int(txns[0]), ledger.check_balanced(cur)

    n_rows, n_distinct, n_txns, problems = db.run(check)
    assert n_rows == n_distinct == len(reqs)  # one decision per request, whatever was re-sent
    assert n_txns == len(reqs)  # one reservation per approval, none twice
    assert problems == []
    txids = {a.txid for a in answers.values()}
    assert len(txids) == len(reqs)
