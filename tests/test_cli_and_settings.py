"""The `rhizome` command: every subcommand has --help, commands load lazily from one table, errors map to
exit codes; settings come from flags over RHIZOME_* variables. Also the bench scripts that took over the
commands that left the runtime CLI (`scenario run`, `region generate`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

import gateway.store.migrate
from bench.synthetic.region import main as generate_region_main
from gateway.contract.errors import NotFound, Unavailable
from gateway.process.cli import COMMANDS, cli, main, parse
from gateway.process.settings import Settings, from_env, to_env

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = [
    ["demo"],
    ["gateway"],
    ["devices", "simulate"],
    ["devices", "baseline"],
    ["devices", "provision"],
    ["devices", "rotate"],
    ["devices", "revoke"],
    ["dashboard"],
    ["dashboard-account"],
    ["plan"],
    ["plan", "vrp"],
    ["plan", "repairs"],
    ["plan", "routes"],
    ["plan", "board"],
    ["db", "upgrade"],
    ["db", "prune"],
    ["region", "load"],
    ["bridge", "config"],
    ["board", "post"],
    ["board", "list"],
    ["board", "change"],
    ["board", "cancel"],
    ["board", "take"],
    ["board", "release"],
]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*words, "--help"])
    assert exited.value.code == 0
    assert f"Usage: rhizome {' '.join(words)}" in capsys.readouterr().out


@pytest.mark.parametrize("words", [[], ["devices"], ["db"]], ids=lambda w: " ".join(["rhizome", *w]))
def test_a_group_without_its_command_prints_its_help_and_exits_2(
    words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(words)
    assert exited.value.code == 2
    assert f"Usage: {' '.join(['rhizome', *words])} [OPTIONS] COMMAND" in capsys.readouterr().out


def test_help_works_whatever_the_environment_holds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RHIZOME_DASHBOARD_PORT", "eighty")
    with pytest.raises(SystemExit) as exited:
        main(["gateway", "-h"])
    assert exited.value.code == 0
    with pytest.raises(SystemExit) as exited:
        main(["db", "upgrade"])  # the command itself reads the settings: a usage error
    assert exited.value.code == 2 and "RHIZOME_DASHBOARD_PORT" in capsys.readouterr().err


def test_the_table_names_every_command_and_devices_holds_the_broker_accounts() -> None:
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == list(COMMANDS)
    for name in COMMANDS:
        assert isinstance(cli.get_command(ctx, name), click.Command), name
    devices = cli.get_command(ctx, "devices")
    assert isinstance(devices, click.Group)
    assert set(devices.list_commands(ctx)) == {"simulate", "baseline", "provision", "rotate", "revoke"}
    assert parse(["devices", "simulate", "--limit", "5"]).params["limit"] == 5


@pytest.mark.parametrize(
    ("words", "unknown"), [(["scenario", "run"], "scenario"), (["region", "generate"], "generate")]
)
def test_the_bench_commands_left_the_runtime_cli(
    words: list[str], unknown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*words, "--help"])
    assert exited.value.code == 2 and f"No such command '{unknown}'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "code"),
    [(KeyboardInterrupt(), 130), (NotFound("gone"), 1), (Unavailable("down"), 1), (OSError("disk"), 1)],
    ids=["ctrl-c", "not-found", "unavailable", "os-error"],
)
def test_errors_in_a_command_are_exit_codes(
    error: BaseException, code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise error

    monkeypatch.setattr(gateway.store.migrate, "upgrade", fail)
    assert main(["--db", f"sqlite:///{tmp_path / 'x.db'}", "db", "upgrade"]) == code


@pytest.mark.slow
def test_console_script_and_module_are_installed_and_list_the_commands() -> None:
    bin_dir = Path(sys.executable).parent
    for command in ([bin_dir / "rhizome"], [sys.executable, "-m", "gateway.process.cli"]):
        result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        for name in ("demo", "gateway", "devices", "dashboard", "plan", "db", "region", "bridge"):
            assert name in result.stdout
        assert "scenario" not in result.stdout


@pytest.mark.slow
def test_commands_load_lazily_so_startup_stays_light() -> None:
    code = (
        "import sys, click\n"
        "from gateway.process.cli import cli, parse\n"
        "parse(['devices', 'simulate', '--limit', '1'])\n"
        "cli.get_help(click.Context(cli, info_name='rhizome'))\n"  # lists, so imports, every command
        "heavy = {'flask', 'folium', 'pandas', 'pulp', 'numpy', 'sqlalchemy', 'matplotlib', 'paho'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


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


def test_the_root_flags_become_the_commands_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []
    monkeypatch.setattr(gateway.store.migrate, "upgrade", lambda engine, revision: seen.append(engine.url))
    monkeypatch.setenv("RHIZOME_DATABASE_URL", "postgresql://nobody@unreachable/none")
    db = f"sqlite:///{tmp_path / 'flag.db'}"
    assert main(["--db", db, "--data-dir", str(tmp_path), "db", "upgrade"]) == 0
    assert [str(url) for url in seen] == [db]  # the flag beat the environment


def test_settings_are_frozen_and_round_trip_through_the_environment() -> None:
    settings = from_env({}, mqtt_url="mqtt://h", data_dir=Path("/tmp/r"))
    with pytest.raises(AttributeError):
        settings.mqtt_url = "mqtt://other"  # type: ignore[misc]
    assert from_env(to_env(settings)) == settings


def test_the_bridge_credentials_are_settings_too() -> None:
    env = {"RHIZOME_BRIDGE_USERNAME": "bridge-utuado", "RHIZOME_BRIDGE_PASSWORD": "pw"}
    settings = from_env(env)
    assert (settings.bridge_username, settings.bridge_password) == ("bridge-utuado", "pw")
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


def test_the_synthetic_region_generator_keeps_its_flags(tmp_path: Path) -> None:
    out = tmp_path / "region.json"
    assert generate_region_main(["--communities", "3", "--seed", "2", "--members", "4", "-o", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert (len(data["communities"]), len(data["members"]), data["format"]) == (3, 4, "rhizome-region/1")
    assert generate_region_main(["--communities", "0"]) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "flag"), [("bench/region_week.py", "--plan-every"), ("bench/synthetic/region.py", "--members")]
)
def test_the_bench_scripts_run_from_the_repository_root(script: str, flag: str) -> None:
    result = subprocess.run(
        [sys.executable, script, "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert flag in result.stdout


def test_the_mqtt_password_comes_from_a_file_or_the_environment_not_the_url(tmp_path: Path) -> None:
    from gateway.process.context import settings_of

    secret = tmp_path / "gateway.main.password"
    secret.write_text("s3cr/t:@x\n", encoding="utf-8")  # as `devices provision --secrets-dir` writes it
    url = "mqtts://gateway.main@broker.example:8883"
    target = Settings(mqtt_url=url, mqtt_password_file=secret).mqtt()
    assert (target.username, target.password, target.tls, target.port) == (
        "gateway.main",
        "s3cr/t:@x",
        True,
        8883,
    )
    assert from_env({"RHIZOME_MQTT_URL": url, "RHIZOME_MQTT_PASSWORD": "pw"}).mqtt().password == "pw"
    env = {"RHIZOME_MQTT_URL": url, "RHIZOME_MQTT_PASSWORD_FILE": str(secret)}
    assert from_env(env).mqtt().password == "s3cr/t:@x"
    assert from_env(to_env(from_env(env))).mqtt().password == "s3cr/t:@x"  # a supervisor's children too
    ctx = parse(["--mqtt", url, "--mqtt-password-file", str(secret), "db", "upgrade"])
    assert settings_of(ctx).mqtt().password == "s3cr/t:@x"  # the flag takes the file, never the password
    shown = repr(target) + repr(from_env({"RHIZOME_MQTT_URL": url, "RHIZOME_MQTT_PASSWORD": "pw-in-env"}))
    assert "s3cr/t" not in shown and "pw-in-env" not in shown


@pytest.mark.parametrize(
    ("url", "extra", "message"),
    [
        ("mqtts://gateway.main:pw@b:8883", {"mqtt_password": "other"}, "drop one"),
        ("mqtts://gateway.main@b:8883", {"mqtt_password": "a", "mqtt_password_file": Path("f")}, "not both"),
        ("mqtts://b:8883", {"mqtt_password": "a"}, "needs a user"),
    ],
)
def test_an_mqtt_password_given_twice_or_without_a_user_is_refused(
    url: str, extra: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(mqtt_url=url, **extra).mqtt()


def test_a_missing_or_empty_password_file_is_named_when_connecting_not_before(tmp_path: Path) -> None:
    url = "mqtts://gateway.main@b:8883"
    settings = from_env({"RHIZOME_MQTT_URL": url, "RHIZOME_MQTT_PASSWORD_FILE": str(tmp_path / "absent")})
    with pytest.raises(ValueError, match=r"cannot read the MQTT password file .*absent"):
        settings.mqtt()  # `db upgrade` before `devices provision` wrote the file still runs
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is empty"):
        Settings(mqtt_url=url, mqtt_password_file=tmp_path / "empty").mqtt()
