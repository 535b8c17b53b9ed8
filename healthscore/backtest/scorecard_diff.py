"""`healthscore diff-scorecard OLD NEW`: preview a scorecard change on the current data.

Both scorecards score every live account in the store, as of now, with the same previous
grades (so hysteresis acts as in a real run); nothing is written. The result lists exactly
the accounts whose grade changes, and counts them by transition ("green → yellow").
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healthscore.config import Config
from healthscore.core.errors import ConfigError
from healthscore.core.yamlfile import Loc, YamlDocument, load_yaml, parse_yaml, validate
from healthscore.pipeline.cycle import Pipeline
from scoring import ScoreBatch, Scorecard, reference_problems


def _document(path: str | Path) -> YamlDocument:
    """A file, or ``REV:PATH`` — the file as committed in git (``HEAD:healthscore.yaml``)."""
    text = str(path)
    if Path(text).exists() or ":" not in text:
        return load_yaml(path)
    git = shutil.which("git")
    if git is None:
        raise ConfigError(f"{text}: no such file (and git is not installed for REV:PATH)")
    rev, _, name = text.partition(":")
    where = Path(name).resolve().parent if Path(name).parent.exists() else Path.cwd()
    shown = subprocess.run(
        [git, "-C", str(where), "show", f"{rev}:./{Path(name).name}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if shown.returncode != 0:
        raise ConfigError(
            f"{text}: not a file, and git cannot show it "
            f"({shown.stderr.strip().splitlines()[-1] if shown.stderr else ''})"
        )
    return parse_yaml(shown.stdout, text)


def load_scorecard(path: str | Path, provided: set[str] | None = None) -> Scorecard:
    """A scorecard from a whole configuration file (its ``scorecard:`` section) or from a
    file holding only a scorecard — or from git, as ``REV:PATH``; errors name file, line and
    field."""
    doc = _document(path)
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{doc.path}:1: expected a mapping (a configuration or a scorecard)")
    root: Loc = ("scorecard",) if "scorecard" in doc.data else ()
    card = validate(doc, Scorecard, root=root)
    problems = [
        f"{doc.path}:{doc.line_of((*root, *loc)) or 1} {'.'.join(map(str, (*root, *loc)))}: {msg}"
        for loc, msg in reference_problems(card, provided)
    ]
    if problems:
        raise ConfigError("\n".join(problems))
    return card


@dataclass
class GradeChange:
    account_id: str
    name: str
    old_grade: str
    new_grade: str
    old_score: float | None
    new_score: float | None


@dataclass
class ScorecardDiff:
    old_version: str
    new_version: str
    accounts: int
    changes: list[GradeChange] = field(default_factory=list)
    score_changed: int = 0  # accounts whose rounded score moved, grade or not
    mean_score_change: float = 0.0

    @property
    def transitions(self) -> dict[str, int]:
        counts = Counter(f"{c.old_grade} → {c.new_grade}" for c in self.changes)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def as_dict(self) -> dict[str, Any]:
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "accounts": self.accounts,
            "grade_changes": len(self.changes),
            "transitions": self.transitions,
            "score_changed": self.score_changed,
            "mean_score_change": round(self.mean_score_change, 2),
            "changes": [vars(c) for c in self.changes],
        }


def _value(batch: ScoreBatch, i: int) -> float | None:
    v = float(batch.score[i])
    return None if math.isnan(v) else round(v, 2)


def diff_scorecards(pipeline: Pipeline, old: Scorecard, new: Scorecard) -> ScorecardDiff:
    """Score the store's current data with both cards; nothing is written."""
    now = pipeline.clock()
    accounts = pipeline.store.accounts()
    previous = pipeline.store.scores_as_of(now)
    batches = []
    for card in (old, new):
        config: Config = pipeline.config.model_copy(update={"scorecard": card})
        scorer = Pipeline(
            config,
            pipeline.settings,
            pipeline.store,
            config_path=pipeline.config_path,
            clock=pipeline.clock,
        )
        batches.append(scorer.compute(now, accounts=accounts, previous=previous))
    a, b = batches
    names = {acc.id: acc.name for acc in accounts}
    out = ScorecardDiff(old.version, new.version, len(a.account_ids))
    moved = []
    for i, account_id in enumerate(a.account_ids):
        before, after = _value(a, i), _value(b, i)
        if before is not None and after is not None:
            moved.append(after - before)
            out.score_changed += round(before) != round(after)
        if a.grade[i] != b.grade[i]:
            out.changes.append(
                GradeChange(
                    account_id,
                    names.get(account_id, account_id),
                    str(a.grade[i]),
                    str(b.grade[i]),
                    before,
                    after,
                )
            )
    out.mean_score_change = sum(moved) / len(moved) if moved else 0.0
    out.changes.sort(key=lambda c: (c.old_grade, c.new_grade, c.name))
    return out
