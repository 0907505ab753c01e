"""`./atm demo`: a simulated board running the real firmware, and the host dispensing through it."""

from __future__ import annotations

import secrets
import sys
import time

from atm_host.link import DispenserClient
from atm_host.link.signing import sign_dispense, sign_replenish, verify_report
from atm_sim.board import SimBoard

DEMO_KEY = bytes(range(1, 33))  # a demo key, never used on a real device


def main() -> int:
    with SimBoard() as board:
        board.mech.load([100, 100, 100, 100])
        print(f"simulated board up: firmware in MicroPython, UART on {board.port}")
        t0 = time.perf_counter()
        with DispenserClient.connect(board.port, timeout=10) as client:
            hello = client.hello()
            dev = hello.device_id.hex()
            print(f"hello: firmware {hello.firmware}, device {dev}, boot #{hello.boot_count}")
            client.provision(DEMO_KEY)
            nonce = client.get_nonce().nonce
            client.replenish(sign_replenish(DEMO_KEY, hello.device_id, nonce, (100, 50, 20, 10), [100] * 4))
            txid = secrets.token_bytes(16)
            nonce = client.get_nonce().nonce
            token = sign_dispense(DEMO_KEY, hello.device_id, nonce, txid, (4, 2, 0, 0))  # 500 yuan
            with client.event_queue() as events:
                res = client.dispense(token)
                print(f"dispensed to the stacker: {res.stacked} (notes per cassette)")
                print(f"presented: {client.present(txid)} notes")
                board.mech.take()
                events.wait_for(["items_taken"], txid=txid, timeout=10)
            rep = client.get_report(txid)
            ok = verify_report(DEMO_KEY, rep.raw)
            print(f"signed report: presented {rep.presented}, retracted {rep.retracted}, MAC ok: {ok}")
            print(f"customer holds {board.mech.taken} notes; cassettes now {board.mech.cassettes}")
            print(f"whole withdrawal took {time.perf_counter() - t0:.2f} s")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
