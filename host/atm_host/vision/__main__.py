"""`python -m atm_host.vision <subcommand>`: models, eval, bench, enroll, verify, qr."""

import sys

from .cli import main

sys.exit(main())
