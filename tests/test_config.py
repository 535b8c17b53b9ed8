"""Bad configuration stops start-up with the variable, or the file, line and field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from connectors.registry import Settings, load_settings
from healthscore.config import load_config
from healthscore.core.durations import format_duration, parse_duration
from healthscore.core.errors import ConfigError

EXAMPLE = (Path(__file__).parent.parent / "healthscore" / "healthscore.example.yaml").read_text()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "healthscore.yaml"
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_shipped_example_is_valid(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, EXAMPLE))
    assert config.scorecard.name == "default-dear"
    assert set(config.scorecard.groups) == {"deployment", "engagement", "adoption", "roi"}
    assert config.sources.salesforce.sync_every == timedelta(minutes=15)


def test_negative_weight_points_at_its_line(tmp_path: Path) -> None:
    text = EXAMPLE.replace(
        "      weight: 3\n      metric: seat_utilization",
        "      weight: -3\n      metric: seat_utilization",
    )
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    line = line_of(text, "weight: -3")
    assert (
        f"healthscore.yaml:{line} scorecard.measures.seat_utilization.weight: "
        f"Input should be greater than or equal to 0" in str(err.value)
    )


def test_unknown_metric_lists_the_known_ones(tmp_path: Path) -> None:
    text = EXAMPLE.replace("metric: feature_adoption_pct", "metric: feature_adoptoin_pct")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    line = line_of(text, "feature_adoptoin_pct")
    assert (
        f":{line} scorecard.measures.feature_adoption.metric: unknown metric "
        f"'feature_adoptoin_pct'" in str(err.value)
    )
    assert "feature_adoption_pct" in str(err.value)


def test_measure_in_a_missing_group(tmp_path: Path) -> None:
    text = EXAMPLE.replace(
        "      group: roi\n      weight: 2\n      metric: nps",
        "      group: sentiment\n      weight: 2\n      metric: nps",
    )
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert (
        f":{line_of(text, 'group: sentiment')} scorecard.measures.nps.group: group "
        f"'sentiment' is not under 'groups'" in str(err.value)
    )


def test_group_weights_summing_to_zero(tmp_path: Path) -> None:
    text = EXAMPLE
    for g in (
        "Deployment, weight: 20",
        "Engagement, weight: 25",
        "Adoption, weight: 35",
        "ROI & sentiment, weight: 20",
    ):
        text = text.replace(g, g.split(", weight")[0] + ", weight: 0")
    with pytest.raises(ConfigError, match=r"scorecard.groups: weights sum to 0"):
        load_config(write(tmp_path, text))


def test_unknown_field_typo_and_bad_duration(tmp_path: Path) -> None:
    text = EXAMPLE.replace("    sync_every: 15m", "    sync_evry: 15m").replace(
        "    overlap: 5m", "    overlap: five minutes"
    )
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    msg = str(err.value)
    assert f":{line_of(text, 'sync_evry')} sources.salesforce.sync_evry: unknown field" in msg
    assert (
        f":{line_of(text, 'overlap: five')} sources.salesforce.overlap: must be a duration" in msg
    )


def test_yaml_syntax_error_and_duplicate_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"healthscore.yaml:2: not valid YAML"):
        load_config(write(tmp_path, "sources:\n  salesforce: [unclosed\n"))
    with pytest.raises(ConfigError, match=r"healthscore.yaml:3 sources.salesforce: duplicate"):
        load_config(write(tmp_path, "sources:\n  salesforce: {}\n  salesforce: {}\n"))


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"configuration file not found.*HEALTHSCORE_CONFIG"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESFORCE_INSTANCE_URL", "http://acme.my.salesforce.com")
    with pytest.raises(ConfigError, match=r"SALESFORCE_INSTANCE_URL: .*https://"):
        load_settings()
    monkeypatch.delenv("SALESFORCE_INSTANCE_URL")
    monkeypatch.setenv("SALESFORCE_AUTH_FLOW", "password")
    with pytest.raises(ConfigError, match="SALESFORCE_AUTH_FLOW"):
        load_settings()


def test_missing_credentials_name_every_variable_and_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("SALESFORCE_INSTANCE_URL", "SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SALESFORCE_CLIENT_SECRET", "s3cr3t-value")
    with pytest.raises(ConfigError) as err:
        load_settings().require_salesforce()
    assert "SALESFORCE_INSTANCE_URL, SALESFORCE_CLIENT_ID" in str(err.value)
    settings = Settings()
    assert "s3cr3t-value" not in repr(settings) and "s3cr3t-value" not in str(err.value)


def test_jwt_flow_needs_its_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESFORCE_AUTH_FLOW", "jwt")
    monkeypatch.setenv("SALESFORCE_INSTANCE_URL", "https://acme.my.salesforce.com")
    monkeypatch.setenv("SALESFORCE_CLIENT_ID", "key")
    with pytest.raises(ConfigError, match="SALESFORCE_USERNAME, SALESFORCE_PRIVATE_KEY_FILE"):
        load_settings().require_salesforce()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        (90, timedelta(seconds=90)),
    ],
)
def test_durations(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "7 days", "-1d", "1y", True, None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="must be a duration"):
        parse_duration(bad)


def test_format_duration() -> None:
    assert [
        format_duration(timedelta(days=7)),
        format_duration(timedelta(minutes=90)),
        format_duration(timedelta(seconds=45)),
    ] == ["1w", "90m", "45s"]
