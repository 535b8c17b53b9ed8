"""``python -m sandbox.chaos``: the chaos suite (``make chaos``); one JSON line on stdout, exit
status 1 when an invariant fails."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sandbox.chaos import DEFAULTS
from sandbox.chaos.run import main

parser = argparse.ArgumentParser(prog="python -m sandbox.chaos", description=__doc__)
parser.add_argument("--accounts", type=int, default=DEFAULTS["accounts"])
parser.add_argument(
    "--cycles", type=int, default=DEFAULTS["cycles"], help="score cycles under faults (>= 3)"
)
parser.add_argument(
    "--every", type=int, default=DEFAULTS["every"], help="seconds between score cycles (>= 8)"
)
parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
parser.add_argument("--keep", type=Path, default=None, help="keep the logs in this folder")
args = parser.parse_args()
sys.exit(main(args.accounts, args.cycles, args.every, args.seed, args.keep))
