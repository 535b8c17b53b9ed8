"""healthscore: a transparent customer health score worker.

The core package holds what every stage shares: settings, the YAML configuration, the
error taxonomy, the HTTP retry policy and the in-process pipeline that the CLI, the demo,
the tests and the Celery tasks all run.
"""

__version__ = "0.1.0"
