"""The `rhizome` command: every subcommand has --help; settings come from flags over RHIZOME_* variables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.process.cli import build_parser, main
from gateway.process.settings import Settings, from_env, to_env

SUBCOMMANDS = [
    ["demo"],
    ["gateway"],
    ["devices", "simulate"],
    ["dashboard"],
    ["plan"],
    ["db", "upgrade"],
    ["region", "load"],
    ["region", "generate"],
]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*words, "--help"])
    assert exited.value.code == 0
    assert f"usage: rhizome {' '.join(words)}" in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    bin_dir = Path(sys.executable).parent
    result = subprocess.run([bin_dir / "rhizome", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for command in ("demo", "gateway", "devices", "dashboard", "plan", "db", "region"):
        assert command in result.stdout


def test_environment_then_flags() -> None:
    env = {
        "RHIZOME_MQTT_URL": "mqtt://a:b@h:1884",
        "RHIZOME_DASHBOARD_PORT": "9000",
        "RHIZOME_DATA_DIR": "/x",
    }
    settings = from_env(env, database_url="sqlite:///y.db", dashboard_port=None)
    assert settings.mqtt().port == 1884
    assert settings.dashboard_port == 9000
    assert settings.data_dir == Path("/x")
    assert settings.effective_database_url == "sqlite:///y.db"
    assert (
        from_env({"RHIZOME_DATABASE_URL": "postgresql://h/db"}, database_url="sqlite://").database_url
        == "sqlite://"
    )


def test_settings_are_frozen_and_round_trip_through_the_environment() -> None:
    settings = from_env({}, mqtt_url="mqtt://h", data_dir=Path("/tmp/r"))
    with pytest.raises(AttributeError):
        settings.mqtt_url = "mqtt://other"  # type: ignore[misc]
    assert from_env(to_env(settings)) == settings


def test_embedded_defaults() -> None:
    settings = Settings(data_dir=Path("/srv/rz"))
    assert settings.effective_database_url == "sqlite:////srv/rz/rhizome.db"
    with pytest.raises(ValueError, match="no MQTT broker"):
        settings.mqtt()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RHIZOME_DASHBOARD_PORT": "eighty"}, "RHIZOME_DASHBOARD_PORT"),
        ({"RHIZOME_MQTT_URL": "http://x"}, "mqtt://"),
    ],
)
def test_bad_settings_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_env(env)


def test_a_bad_flag_value_exits_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--mqtt", "ftp://nope", "db", "upgrade"])
    assert exited.value.code == 2
    assert "mqtt://" in capsys.readouterr().err


def test_a_missing_region_file_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--data-dir", str(tmp_path), "--log-level", "ERROR", "region", "load", str(tmp_path / "none.json")]
    )
    assert code == 1
