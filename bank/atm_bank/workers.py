"""One bank worker process: its own database connection and MQTT session on the shared subscription.

In a module of its own (not __main__) so `serve` can start it with the spawn method: a spawned child
imports the target by its module path, which `python -m atm_bank`'s __main__ does not have.
"""

import argparse
import logging
import signal
import sys
import time

from atm_msg.settings import BrokerSettings

from . import signing
from .config import load_config
from .core import Bank
from .db import open_database
from .service import BankWorker
from .settle import Settler

# The database thread gives up the GIL in every SQLite call; with the default 5 ms switch interval it then
# waited up to 5 ms for the MQTT thread to hand it back, while holding the database's write lock.
SWITCH_INTERVAL_S = 0.0005


def _broker(args: argparse.Namespace) -> BrokerSettings:
    return BrokerSettings(
        host=args.host,
        port=args.port,
        username=args.username,
        password=args.password,
        ca_file=args.ca,
        cert_file=args.cert,
        key_file=args.key,
    )


def _exit_now(signum: int, frame: object) -> None:
    sys.exit(0)


def run_worker(index: int, args: argparse.Namespace) -> None:
    """Body of one worker process."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker{index} %(levelname)s %(message)s")
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    cfg = load_config(args.config)
    key = signing.load(args.signing_key)
    pub = {args.key_id: key.public_key()}
    db = open_database(args.db)
    worker = BankWorker(
        f"{args.name}-{index}",
        _broker(args),
        Bank(db, cfg, pub),
        Settler(db),
        fleet=signing.fleet_config(cfg, pub),
    )
    signal.signal(signal.SIGTERM, _exit_now)
    worker.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        worker.stop()
