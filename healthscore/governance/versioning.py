"""Which scorecard scored a run: its content hash, and the git commit when the file is in git.

A version reads ``3f2a9c1d0b7e`` (content hash only), ``3f2a9c1d0b7e@1a2b3c4d`` (the file is
committed as it is) or ``3f2a9c1d0b7e@1a2b3c4d+dirty`` (the file differs from that commit).
The content hash decides whether two runs scored alike: a commit that only touched comments
is not a scorecard change.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from scoring import Scorecard

log = logging.getLogger(__name__)


def content_hash(version: str | None) -> str:
    """The scorecard hash part of a recorded version ('' for none)."""
    return (version or "").split("@", 1)[0]


def changed(old: str | None, new: str | None) -> bool:
    """Did the scorecard's content change between two recorded versions?"""
    return bool(old) and bool(new) and content_hash(old) != content_hash(new)


def git_commit(path: str | Path) -> str | None:
    """The last commit touching ``path`` (short), ``+dirty`` if the file differs from it;
    None when the file is not in a git work tree (or git is not installed)."""
    p = Path(path)
    git = shutil.which("git")
    if git is None or not p.is_file():
        return None
    where = str(p.resolve().parent)
    try:
        commit = subprocess.run(
            [git, "-C", where, "log", "-1", "--format=%h", "--", p.resolve().name],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if commit.returncode != 0 or not commit.stdout.strip():
            return None
        dirty = subprocess.run(
            [git, "-C", where, "status", "--porcelain", "--", p.resolve().name],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("git not usable for %s: %s", p, exc)
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def scorecard_version(card: Scorecard, path: str | Path | None = None) -> str:
    """The version recorded with a scoring run (fits ``score_runs.scorecard_version``)."""
    commit = git_commit(path) if path else None
    return f"{card.version}@{commit}" if commit else card.version
