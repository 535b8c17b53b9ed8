"""Scorecard versions: a content hash, plus the git commit when the file is in git."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from healthscore.config import load_config
from healthscore.governance.versioning import changed, content_hash, git_commit, scorecard_version

EXAMPLE = Path(__file__).parent.parent / "healthscore" / "healthscore.example.yaml"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_committed_file_adds_its_commit_and_an_edit_marks_it_dirty(tmp_path: Path) -> None:
    config = tmp_path / "healthscore.yaml"
    config.write_text(EXAMPLE.read_text())
    card = load_config(config).scorecard
    assert scorecard_version(card, config) == card.version  # not in git: the hash only
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "-c", "user.email=ops@example.com", "-c", "user.name=ops", "add", ".")
    _git(
        tmp_path,
        "-c",
        "user.email=ops@example.com",
        "-c",
        "user.name=ops",
        "commit",
        "-qm",
        "scorecard",
    )
    head = _git(tmp_path, "log", "-1", "--format=%h")
    assert git_commit(config) == head
    assert scorecard_version(card, config) == f"{card.version}@{head}"
    config.write_text(config.read_text() + "\n# a comment\n")
    assert scorecard_version(card, config) == f"{card.version}@{head}+dirty"


def test_only_a_content_change_counts_as_a_scorecard_change() -> None:
    card = load_config().scorecard
    assert content_hash(f"{card.version}@abc1234") == card.version
    assert not changed(f"{card.version}@abc1234", f"{card.version}@def5678+dirty")
    assert changed(f"{card.version}@abc1234", "0123456789ab")
    assert not changed(None, card.version)  # no earlier run: nothing to mark
    heavier = card.model_copy(update={"coverage_floor": 0.6})
    assert heavier.version != card.version


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_diff_scorecard_reads_the_committed_version_as_rev_path(
    tmp_path: Path, monkeypatch
) -> None:
    from healthscore.backtest.scorecard_diff import load_scorecard
    from healthscore.core.errors import ConfigError

    config = tmp_path / "healthscore.yaml"
    config.write_text(EXAMPLE.read_text())
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "-c", "user.email=ops@example.com", "-c", "user.name=ops", "add", ".")
    _git(
        tmp_path,
        "-c",
        "user.email=ops@example.com",
        "-c",
        "user.name=ops",
        "commit",
        "-qm",
        "scorecard",
    )
    config.write_text(EXAMPLE.read_text().replace("coverage_floor: 0.5", "coverage_floor: 0.6"))
    monkeypatch.chdir(tmp_path)
    committed = load_scorecard("HEAD:healthscore.yaml")
    assert committed.coverage_floor == 0.5
    assert load_scorecard(config).coverage_floor == 0.6
    with pytest.raises(ConfigError, match=r"HEAD~5:healthscore\.yaml: not a file"):
        load_scorecard("HEAD~5:healthscore.yaml")
