"""The deployment files (docs/deploy/) stay consistent with the code: every command they run parses, the
gateways are distinct shared-subscription members restarted within their session expiry, the container
broker uses the tested mosquitto.conf, and the dashboard's WSGI module builds the app from the environment."""

from __future__ import annotations

import configparser
import importlib
import shlex
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine

from gateway.broker.embedded import MOSQUITTO_CONF
from gateway.ingest.service import SHARED_SESSION_EXPIRY_S
from gateway.process.cli import parse

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "deploy"
KEY = "5f0c" * 16  # a made-up key of the right shape; a real one comes from secrets.token_hex(32)


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)  # systemd repeats EnvironmentFile
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(DEPLOY / name, encoding="utf-8")
    return parser


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))


def commands() -> dict[str, list[str]]:
    """Every process command line of the units, the Procfile and the compose file, by where it comes from."""
    found = {}
    for name in ("rhizome-gateway@.service", "rhizome-planner.service", "rhizome-dashboard.service"):
        argv = shlex.split(unit(name)["Service"]["ExecStart"])
        found[name] = [Path(argv[0]).name, *argv[1:]]
    for line in (DEPLOY / "Procfile").read_text(encoding="utf-8").splitlines():
        process, _, command = line.partition(":")
        argv = shlex.split(command)
        while "=" in argv[0]:  # RHIZOME_MQTT_URL=$RHIZOME_GATEWAY_1_MQTT_URL: the process's own account
            argv.pop(0)
        found[f"Procfile {process}"] = argv
    for service, spec in compose()["services"].items():
        if "command" in spec and service != "mosquitto":
            found[f"compose {service}"] = shlex.split(spec["command"])
    return found


def test_every_rhizome_command_in_the_deploy_files_parses() -> None:
    rhizome = {where: argv for where, argv in commands().items() if argv[0] == "rhizome"}
    assert len(rhizome) >= 9
    for where, argv in rhizome.items():
        ctx = parse([a.replace("%i", "1") for a in argv[1:]])  # raises click.UsageError if it does not
        assert ctx.command.callback is not None, where


def test_every_gateway_is_a_distinct_shared_member() -> None:
    gateways = {w: a for w, a in commands().items() if a[:2] == ["rhizome", "gateway"] and "@" not in w}
    assert len(gateways) == 4  # two in the Procfile, two in the compose file
    for source in ("Procfile", "compose"):
        parsed = [parse(a[1:]).params for w, a in gateways.items() if w.startswith(source)]
        assert all(p["shared"] for p in parsed)
        assert len({p["client_id"] for p in parsed}) == len({p["metrics_port"] for p in parsed}) == 2
    template = commands()["rhizome-gateway@.service"]
    assert "rhizome-gateway-%i" in template and "910%i" in template  # unique per instance


def test_systemd_restarts_a_gateway_well_within_its_session_expiry() -> None:
    gateway = unit("rhizome-gateway@.service")
    assert gateway["Service"]["Restart"] == "always"
    assert int(gateway["Service"]["RestartSec"]) * 10 < SHARED_SESSION_EXPIRY_S
    assert gateway["Unit"]["StartLimitIntervalSec"] == "0"  # never gives up restarting
    for name in ("rhizome-gateway@.service", "rhizome-planner.service", "rhizome-dashboard.service"):
        files = [
            line.split("=", 1)[1]
            for line in (DEPLOY / name).read_text(encoding="utf-8").splitlines()
            if line.startswith("EnvironmentFile=")
        ]
        own = name.removeprefix("rhizome-").removesuffix(".service").replace("@", "-%i")
        assert files == ["/etc/rhizome/rhizome.env", f"/etc/rhizome/{own}.env"]  # its own account last


def test_every_process_connects_with_its_own_broker_account() -> None:
    # The broker binds client ids to usernames: processes sharing an account take over each other's session.
    procfile = (DEPLOY / "Procfile").read_text(encoding="utf-8").splitlines()
    urls = [shlex.split(line.partition(":")[2])[0] for line in procfile]
    assert all(url.startswith("RHIZOME_MQTT_URL=$RHIZOME_") for url in urls) and len(set(urls)) == len(urls)
    example = (DEPLOY / "rhizome.env.example").read_text(encoding="utf-8")
    for url in urls:
        assert f"{url.split('$')[1]}=mqtt://" in example
    services = compose()["services"]
    connecting = ("gateway-1", "gateway-2", "planner", "dashboard")
    assert all(services[s]["env_file"][0] == "rhizome.env" for s in connecting)
    assert len({services[s]["env_file"][-1] for s in connecting}) == len(connecting)
    assert all("--workers 1 " in " ".join(argv) for argv in commands().values() if argv[0] == "gunicorn")


def test_the_dashboard_is_served_by_a_wsgi_server_from_the_wsgi_module() -> None:
    servers = [argv for argv in commands().values() if argv[0] == "gunicorn"]
    assert len(servers) == 3
    assert all(argv[-1] == "dashboard.web.wsgi:app" for argv in servers)


def test_the_container_broker_runs_the_tested_config_with_its_paths_mounted() -> None:
    broker = compose()["services"]["mosquitto"]
    mounts = {}
    for volume in broker["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = source
    config_target = shlex.split(broker["command"])[-1]
    assert (DEPLOY / mounts[config_target]).resolve() == MOSQUITTO_CONF
    options = dict(
        line.split(None, 1) for line in MOSQUITTO_CONF.read_text().splitlines() if line and line[0] != "#"
    )
    assert options["password_file"] in mounts
    assert options["persistence_location"].rstrip("/") in mounts
    assert str(Path(options["log_dest"].split()[1]).parent) in mounts


def test_the_deploy_files_are_documentation_and_their_paths_resolve() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = pyproject["tool"]["setuptools"]["package-data"]
    assert not any("deploy" in pattern for patterns in package_data.values() for pattern in patterns)
    build = compose()["x-rhizome"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT and (context / build["dockerfile"]).is_file()
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert f"-f {build['dockerfile']} " in dockerfile  # the build command in its header
    assert (DEPLOY / f"{compose()['x-rhizome']['env_file']}.example").is_file()  # what to copy it from


def test_the_env_example_holds_no_secret() -> None:
    for line in (DEPLOY / "rhizome.env.example").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#") and any(k in line for k in ("PASSWORD", "SECRET", "URL")):
            assert "CHANGE-ME" in line or "@" not in line, line


def test_the_wsgi_module_builds_the_app_from_the_environment(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RHIZOME_DATABASE_URL", sqlite_engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RHIZOME_SECRET_KEY", KEY)
    monkeypatch.setenv("RHIZOME_DATA_DIR", str(tmp_path))
    sys.modules.pop("dashboard.web.wsgi", None)
    wsgi = importlib.import_module("dashboard.web.wsgi")
    try:
        assert wsgi.app.secret_key == KEY
        assert wsgi.app.test_client().get("/api/health").status_code == 200
        # Several workers with a random key each would log users out at random: refuse to start.
        with pytest.raises(RuntimeError, match="RHIZOME_SECRET_KEY"):
            wsgi.build_app({"RHIZOME_DATABASE_URL": "sqlite://"})
    finally:
        sys.modules.pop("dashboard.web.wsgi", None)


def test_the_gateway_flags_the_units_use_reach_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.ingest.service
    from gateway.process.cli import main

    seen: dict[str, object] = {}

    class FakeService:
        def __init__(self, settings: object, engine: object, **kwargs: object) -> None:
            seen.update(kwargs, client_id=settings.gateway_client_id)  # type: ignore[attr-defined]

        def run(self, stop: object) -> None:
            seen["ran"] = True

    monkeypatch.setattr(gateway.ingest.service, "GatewayService", FakeService)
    rules = tmp_path / "rules.toml"
    db = f"sqlite:///{tmp_path / 'r.db'}"
    argv = ["--mqtt", "mqtt://u:p@127.0.0.1:1", "--db", db, "gateway", "--shared"]
    argv += ["--client-id", "rhizome-gateway-1", "--metrics-port", "9101", "--rules", str(rules)]
    argv += ["--sweep-every", "2.5"]
    assert main(argv) == 0
    assert seen == {
        "shared": True,
        "ready_file": None,
        "metrics_port": 9101,
        "rules_file": rules,
        "sweep_every_s": 2.5,
        "client_id": "rhizome-gateway-1",
        "ran": True,
    }


@pytest.mark.parametrize("value", ["0", "-1", "nan", "soon"])
def test_the_gateway_refuses_a_sweep_period_that_is_not_positive(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.process.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["gateway", "--sweep-every", value])
    assert exited.value.code == 2 and "--sweep-every" in capsys.readouterr().err
