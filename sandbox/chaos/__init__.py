"""The chaos suite: the real worker, beat, Redis and PostgreSQL against the emulators, with
workers and Redis killed by SIGKILL and vendor faults injected, then every invariant checked.

``python -m sandbox.chaos`` (``make chaos``, ``healthscore sandbox chaos``) prints one JSON line.
"""

# the run's defaults (`make chaos`): about two minutes on a 2-core machine
DEFAULTS = {"accounts": 150, "cycles": 5, "every": 15, "seed": 42}
