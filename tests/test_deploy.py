"""The deployment files (docs/deploy/) stay consistent with the code: every command they run parses, the
gateways are distinct shared-subscription members restarted within their session expiry, the container
broker uses the tested mosquitto.conf, and the dashboard's WSGI module builds the app from the environment."""

from __future__ import annotations

import configparser
import importlib
import os
import pwd
import shlex
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy import Engine

from gateway.broker.embedded import MOSQUITTO_CONF
from gateway.ingest.service import SHARED_SESSION_EXPIRY_S
from gateway.process.cli import main, parse
from gateway.process.procutil import free_port
from gateway.process.settings import Settings
from tests.conftest import require_mosquitto
from tests.secure_broker import HOST, Probe, adapt_conf, conf_options, run_mosquitto, stop_process

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
    connecting = ("gateway-1", "gateway-2", "planner", "dashboard")  # migrate never connects
    accounts = {
        Settings(mqtt_url=services[s]["environment"]["RHIZOME_MQTT_URL"]).mqtt().username for s in connecting
    }
    assert len(accounts) == len(connecting), accounts
    assert all("--workers 1 " in " ".join(argv) for argv in commands().values() if argv[0] == "gunicorn")


def test_the_dashboard_is_served_by_a_wsgi_server_from_the_wsgi_module() -> None:
    servers = [argv for argv in commands().values() if argv[0] == "gunicorn"]
    assert len(servers) == 3
    assert all(argv[-1] == "dashboard.web.wsgi:app" for argv in servers)


# Options of a Mosquitto config that name a file or directory the broker opens.
PATH_OPTIONS = ("password_file", "acl_file", "cafile", "capath", "certfile", "keyfile", "crlfile", "pid_file")


def referenced_paths(conf: str) -> dict[str, str]:
    """Every path the config makes the broker open, by the option (with its line number) naming it."""
    found = {}
    for n, (option, value) in enumerate(conf_options(conf)):
        if option in PATH_OPTIONS:
            found[f"{option}#{n}"] = value
        elif option == "persistence_location":
            found[f"{option}#{n}"] = value.rstrip("/")
        elif option == "log_dest" and value.split()[0] == "file":
            found[f"{option}#{n}"] = str(Path(value.split(None, 1)[1]).parent)
    return found


def broker_mounts(service: dict) -> tuple[Path, dict[str, str]]:
    """The config file a compose broker runs (on the host) and its volumes, container path -> source."""
    mounts = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = source
    config_target = shlex.split(service["command"])[-1]
    return (DEPLOY / mounts[config_target]).resolve(), mounts


def is_mounted(path: str, mounts: dict[str, str]) -> bool:
    """`path` is a mount target or lies inside a directory mounted whole."""
    return any(path == target or path.startswith(target.rstrip("/") + "/") for target in mounts)


TLS_CONF = DEPLOY / "mosquitto-tls.conf"
LISTENER_OPTIONS = ("listener", "cafile", "certfile", "keyfile")


def test_the_tls_only_config_is_the_shipped_config_with_a_tls_listener_instead() -> None:
    shipped = conf_options(MOSQUITTO_CONF.read_text(encoding="utf-8"))
    tls = conf_options(TLS_CONF.read_text(encoding="utf-8"))
    assert [o for o in tls if o[0] not in LISTENER_OPTIONS] == [o for o in shipped if o[0] != "listener"]
    assert [o for o in tls if o[0] in LISTENER_OPTIONS] == [
        ("listener", "8883"),
        ("cafile", "/etc/mosquitto/certs/ca.crt"),
        ("certfile", "/etc/mosquitto/certs/server.crt"),
        ("keyfile", "/etc/mosquitto/certs/server.key"),
    ]
    listener = [o[0] for o in tls].index("listener")
    attached = {o[0] for o in tls[listener:]}  # the TLS options and the client id rule attach to it
    assert attached <= {*LISTENER_OPTIONS, "use_username_as_clientid"}


def test_the_container_broker_runs_the_tls_only_config_with_its_paths_mounted() -> None:
    broker = compose()["services"]["mosquitto"]
    config, mounts = broker_mounts(broker)
    assert config == TLS_CONF
    assert broker["ports"] == ["8883:8883"]  # nothing in clear
    referenced = referenced_paths(config.read_text(encoding="utf-8"))
    expected = {"password_file", "acl_file", "persistence_location", "cafile", "certfile", "keyfile"}
    assert {key.split("#")[0] for key in referenced} >= expected
    missing = {key: path for key, path in referenced.items() if not is_mounted(path, mounts)}
    assert not missing, f"the broker config opens these, the compose file never mounts them: {missing}"


def test_the_rhizome_containers_reach_the_broker_over_tls_with_a_mounted_password_file() -> None:
    for name, service in compose()["services"].items():
        if "RHIZOME_MQTT_URL" not in service.get("environment", {}):
            continue
        env, mounts = service["environment"], {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        target = Settings(mqtt_url=env["RHIZOME_MQTT_URL"]).mqtt()
        assert target.tls and target.password is None and (target.host, target.port) == ("mosquitto", 8883)
        for path in (env["RHIZOME_MQTT_CA_FILE"], env["RHIZOME_MQTT_PASSWORD_FILE"]):
            assert is_mounted(path, mounts), (name, path)
        assert (
            Path(env["RHIZOME_MQTT_PASSWORD_FILE"]).name == f"{target.username}.password"
        )  # provision's name


def test_a_path_the_compose_file_forgets_is_reported() -> None:
    """The check above, on the compose file as it was (no ACL mount: Mosquitto exited 13)."""
    conf = "password_file /etc/mosquitto/rhizome.passwd\nacl_file /etc/mosquitto/rhizome.acl\n"
    mounts = {"/etc/mosquitto/rhizome.passwd": "./rhizome.passwd", "/etc/mosquitto/certs": "./tls"}
    assert [p for p in referenced_paths(conf).values() if not is_mounted(p, mounts)] == [
        "/etc/mosquitto/rhizome.acl"
    ]
    assert is_mounted("/etc/mosquitto/certs/server.crt", mounts)
    assert not is_mounted("/etc/mosquitto/certs-old/server.crt", mounts)


@pytest.mark.network
def test_the_shipped_broker_config_starts_on_the_files_provision_writes(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    """The documented setup, with the shipped config's paths moved into tmp_path: `rhizome devices provision
    --broker-dir` writes both files the config names, and the real Mosquitto starts on them and lets the
    provisioned gateway in. Without the ACL file it does not start at all."""
    require_mosquitto()
    broker_dir, secrets = tmp_path / "broker", tmp_path / "secrets"
    db = sqlite_engine.url.render_as_string(hide_password=False)
    argv = ["--db", db, "devices", "provision", "--gateway", "gateway"]
    assert main([*argv, "--broker-dir", str(broker_dir), "--secrets-dir", str(secrets)]) == 0
    password = (secrets / "gateway.gateway.password").read_text(encoding="utf-8").strip()
    port, log = free_port(HOST), tmp_path / "mosquitto.log"
    values = {
        "password_file": str(broker_dir / "rhizome.passwd"),
        "acl_file": str(broker_dir / "rhizome.acl"),
        "persistence_location": f"{tmp_path}/",
        "log_dest": f"file {log}",
        "user": pwd.getpwuid(os.geteuid()).pw_name,
        "listener": f"{port} {HOST}",
    }
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(adapt_conf(MOSQUITTO_CONF.read_text(encoding="utf-8"), values), encoding="utf-8")
    broker = run_mosquitto(conf, [port], log)
    probe = Probe(port, "gateway.gateway", password, "deploy-probe")
    try:
        assert probe.connected(), probe.connack
    finally:
        probe.close()
        stop_process(broker)
    (broker_dir / "rhizome.acl").unlink()  # what the compose file gave the container
    with pytest.raises(AssertionError, match="exited with 13"):
        stop_process(run_mosquitto(conf, [port], log))


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
    env = {}
    for line in (DEPLOY / "rhizome.env.example").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
            if any(k in key for k in ("PASSWORD", "SECRET", "URL")) and not key.endswith("_FILE"):
                assert "CHANGE-ME" in value or urlsplit(value).password is None, line
    # Production: TLS, and the broker password in a file, out of the URL (and of `ps`).
    target = Settings(mqtt_url=env["RHIZOME_MQTT_URL"]).mqtt()
    assert target.tls and target.username and target.password is None
    assert Path(env["RHIZOME_MQTT_PASSWORD_FILE"]).name == f"{target.username}.password"
    assert env["RHIZOME_MQTT_CA_FILE"]


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

    seen: dict[str, object] = {}

    class FakeService:
        def __init__(self, settings: object, engine: object, **kwargs: object) -> None:
            seen.update(kwargs, client_id=settings.gateway_client_id)  # type: ignore[attr-defined]
            seen["metrics_host"] = settings.metrics_host  # type: ignore[attr-defined]

        def run(self, stop: object) -> None:
            seen["ran"] = True

    monkeypatch.setattr(gateway.ingest.service, "GatewayService", FakeService)
    rules = tmp_path / "rules.toml"
    db = f"sqlite:///{tmp_path / 'r.db'}"
    argv = ["--mqtt", "mqtt://u:p@127.0.0.1:1", "--db", db, "gateway", "--shared"]
    argv += ["--client-id", "rhizome-gateway-1", "--metrics-port", "9101", "--rules", str(rules)]
    argv += ["--sweep-every", "2.5", "--metrics-host", "0.0.0.0"]
    assert main(argv) == 0
    assert seen == {
        "shared": True,
        "ready_file": None,
        "metrics_port": 9101,
        "metrics_host": "0.0.0.0",
        "rules_file": rules,
        "sweep_every_s": 2.5,
        "client_id": "rhizome-gateway-1",
        "ran": True,
    }


@pytest.mark.parametrize("value", ["0", "-1", "nan", "soon"])
def test_the_gateway_refuses_a_sweep_period_that_is_not_positive(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["gateway", "--sweep-every", value])
    assert exited.value.code == 2 and "--sweep-every" in capsys.readouterr().err


def compose_header_commands() -> list[list[str]]:
    """The `docker compose ...` setup commands of the compose file's header comment, continuations joined."""
    lines = [
        line[1:].strip() for line in (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8").splitlines()
    ]
    found, current = [], ""
    for line in lines:
        if current or line.startswith("docker compose "):
            current += " " + line.removesuffix("\\").split("  #")[0]
            if not line.endswith("\\"):
                found.append(shlex.split(current))
                current = ""
    return found


def test_every_rhizome_command_of_the_compose_header_parses() -> None:
    rhizome = [argv[argv.index("rhizome") :] for argv in compose_header_commands() if "rhizome" in argv]
    assert len(rhizome) >= 3  # region load, provision, dashboard-account
    for argv in rhizome:
        assert parse(argv[1:]).command.callback is not None, argv
    provision = next(argv for argv in rhizome if argv[1:3] == ["devices", "provision"])
    assert "--broker-dir" in provision and "--secrets-dir" in provision


def test_the_image_is_built_from_an_allowlist_without_the_setups_secrets() -> None:
    # The build context is the repository root, beside rhizome.env, the keys and every password the setup
    # writes: without a .dockerignore `COPY . .` baked them all into the image (found by running it).
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"  # everything out, then only what `pip install .` needs back in
    kept = {line[1:] for line in lines if line.startswith("!")}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert kept == packages | {"pyproject.toml", pyproject["project"]["readme"]}


def test_the_broker_gives_its_volumes_to_its_user_before_it_starts() -> None:
    # The official image chowns only /mosquitto; the config's Debian paths are named volumes that start
    # root-owned, and Mosquitto (dropped to user mosquitto) logged "Unable to open log file".
    broker = compose()["services"]["mosquitto"]
    config, mounts = broker_mounts(broker)
    referenced = referenced_paths(config.read_text(encoding="utf-8"))
    writable = {referenced[k] for k in referenced if k.startswith(("persistence_location", "log_dest"))}
    named = {target for target, source in mounts.items() if not source.startswith(".")}
    assert writable and writable <= named
    entrypoint = broker["entrypoint"]
    assert entrypoint[:2] == ["/bin/sh", "-c"]
    script = shlex.split(entrypoint[2].split("&&")[0])
    assert script[:2] == ["chown", "mosquitto:mosquitto"] and set(script[2:]) == writable
    assert entrypoint[2].endswith('exec /docker-entrypoint.sh "$$@"')  # then the image's own entrypoint


def test_the_broker_files_are_mounted_with_their_directory_so_a_reload_reads_the_new_ones() -> None:
    # provision replaces the files by renaming; a file bind-mounted alone keeps the old inode, so after a
    # SIGHUP the broker still read the first 5 accounts while the host file held 334 (found by running it).
    broker = compose()["services"]["mosquitto"]
    config, mounts = broker_mounts(broker)
    replaced = [
        v for k, v in referenced_paths(config.read_text()).items() if k.startswith(("password", "acl"))
    ]
    assert len(replaced) == 2
    for path in replaced:
        assert path not in mounts and is_mounted(path, mounts), path
        directory = next(t for t in mounts if path.startswith(t.rstrip("/") + "/"))
        assert mounts[directory] == "./broker"
    header = [argv for argv in compose_header_commands() if "provision" in argv]
    assert header and all(argv[argv.index("--broker-dir") + 1] == "/out/broker" for argv in header)


def test_each_container_mounts_only_its_own_broker_password() -> None:
    # Every container once mounted the whole secrets directory: the internet-facing dashboard could read the
    # gateways' passwords (and, provisioned there, every device's).
    for name, service in compose()["services"].items():
        secrets = [v for v in service.get("volumes", []) if "secret" in v.split(":")[0]]
        env = service.get("environment", {})
        if "RHIZOME_MQTT_PASSWORD_FILE" in env:
            own = Path(env["RHIZOME_MQTT_PASSWORD_FILE"]).name
            assert [Path(v.split(":")[0]).name for v in secrets] == [own], name
        else:
            assert not secrets, name


def test_migrate_waits_for_a_healthy_database_and_holds_no_broker_account() -> None:
    services = compose()["services"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["migrate"]["environment"] == {} and services["migrate"]["volumes"] == []
    provision = next(argv for argv in compose_header_commands() if "provision" in argv)
    assert "migrate" not in [provision[i + 1] for i, a in enumerate(provision) if a == "--gateway"]


def test_the_dashboard_keeps_its_logins_on_a_volume() -> None:
    spec = compose()
    dashboard = spec["services"]["dashboard"]
    data = {v.split(":")[1]: v.split(":")[0] for v in dashboard["volumes"]}["/var/lib/rhizome"]
    assert data in spec["volumes"]  # a named volume, not the container's own layer
