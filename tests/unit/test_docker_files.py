"""docker/: the worker image and the compose stack, read as Docker and Compose read them.

Compose values are interpolated as Compose does (`${VAR}`, `${VAR:-default}`,
`${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, nesting, `$$`), once with only the
required secrets set (everything else at its default) and once with docker/.env.example
with those secrets filled in, and the results are checked against the worker's settings
and the FreeSWITCH configuration they are meant to fit.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from callworker.config import Settings
from callworker.esl.peers import allow_list
from tests.unit.test_freeswitch_conf import acl_allows, assemble, configuration, params, route

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_TEXT = (DOCKER / "compose.yaml").read_text(encoding="utf-8")
SERVICES = {"freeswitch", "rabbitmq", "postgres", "worker"}
NAMES = {
    "CALLWORKER_AMQP_URL",
    "CALLWORKER_DATABASE_URL",
    "CALLWORKER_ESL_HOST",
    "CALLWORKER_ESL_PORT",
    "CALLWORKER_ESL_PASSWORD",
    "CALLWORKER_NODE_ID",
    "CALLWORKER_HTTP_HOST",
    "CALLWORKER_HTTP_PORT",
    "CALLWORKER_SOCKET_HOST",
    "CALLWORKER_SOCKET_PORT",
    "CALLWORKER_GATEWAYS",
    "CALLWORKER_DEFAULT_GATEWAY",
    "CALLWORKER_FLASHCALL_HMAC_KEY",
    "CALLWORKER_SOCKET_ALLOW",
}
# What an operator must set: compose refuses to start without them (no known default).
REQUIRED = {"ESL_PASSWORD": "esl0pass0from0env", "FLASHCALL_HMAC_KEY": "0123456789abcdef0123456789abcdef"}


class ComposeRefused(Exception):
    """Compose would stop here: a required variable is unset or empty."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """One Compose value with its variables substituted."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_substitute(text[i + 2 : end], env))
            i = end + 1
        else:
            assert text[i] != "$" or not re.match(r"[A-Za-z_]", text[i + 1 : i + 2]), text
            out.append(text[i])
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return index
    raise AssertionError(f"unclosed ${{ in {text!r}")


def _substitute(expression: str, env: Mapping[str, str]) -> str:
    found = re.fullmatch(r"([A-Za-z_]\w*)(?:(:?[-?])(.*))?", expression, re.DOTALL)
    assert found is not None, f"unsupported interpolation ${{{expression}}}"
    name, operator, default = found.groups()
    value = env.get(name)
    if operator == ":?" and not value or operator == "?" and value is None:
        raise ComposeRefused(f"required variable {name} is missing a value: {default}")
    if operator == ":-" and not value or operator == "-" and value is None:
        return interpolate(default, env)
    return value or ""


def _interpolated(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolated(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolated(value, env) for key, value in node.items()}
    return node


def _env_file(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


ENV_EXAMPLE = _env_file(DOCKER / ".env.example")
ENVIRONMENTS = {
    "required only": dict(REQUIRED),
    "env.example": {**ENV_EXAMPLE, **{k: v for k, v in REQUIRED.items() if not ENV_EXAMPLE.get(k)}},
}


@pytest.fixture(params=sorted(ENVIRONMENTS))
def compose(request: pytest.FixtureRequest) -> dict[str, Any]:
    """compose.yaml as Compose sees it, under each environment."""
    return _interpolated(yaml.safe_load(COMPOSE_TEXT), ENVIRONMENTS[request.param])


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def published(service: dict[str, Any]) -> set[tuple[int, str]]:
    """Container ports published by a service, as (port, protocol)."""
    return {(port, protocol) for _, port, protocol in published_on(service)}


def published_on(service: dict[str, Any]) -> set[tuple[str, int, str]]:
    """(host address, port, protocol) of each port a service publishes ("0.0.0.0": all)."""
    ports: set[tuple[str, int, str]] = set()
    for entry in service.get("ports", []):
        spec, _, protocol = str(entry).partition("/")
        parts = spec.split(":")
        address = parts[0] if len(parts) == 3 else "0.0.0.0"
        first, _, last = parts[-1].partition("-")
        ports.update(
            (address, port, protocol or "tcp") for port in range(int(first), int(last or first) + 1)
        )
    return ports


ON_THE_HOST = ("freeswitch", "worker")  # network_mode: host


def test_compose_names_its_services_and_their_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        assert set(service.get("depends_on", {})) <= SERVICES


def test_worker_builds_from_the_repository_root(compose: dict[str, Any]) -> None:
    build = compose["services"]["worker"]["build"]
    context = (DOCKER / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"


def test_only_contract_variables_are_named_callworker() -> None:
    for text in (COMPOSE_TEXT, (DOCKER / ".env.example").read_text(encoding="utf-8")):
        assert set(re.findall(r"\bCALLWORKER_[A-Z_]+", text)) <= NAMES


def test_env_example_lists_every_variable_compose_reads() -> None:
    read = set(re.findall(r"\$\{([A-Za-z_]\w*)", COMPOSE_TEXT.replace("$$", "")))
    assert read == set(ENV_EXAMPLE)


@pytest.mark.parametrize("missing", sorted(REQUIRED))
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_compose_refuses_to_start_without_each_secret(missing: str, value: str | None) -> None:
    env = {k: v for k, v in ENVIRONMENTS["env.example"].items() if k != missing}
    if value is not None:
        env[missing] = value
    with pytest.raises(ComposeRefused, match=missing):
        _interpolated(yaml.safe_load(COMPOSE_TEXT), env)


def test_env_example_leaves_the_secrets_to_the_operator() -> None:
    # A value shipped here would be a published secret in every copy of it.
    assert {name: ENV_EXAMPLE.get(name) for name in REQUIRED} == {name: "" for name in REQUIRED}


def test_worker_settings_point_at_the_services(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(compose["services"]["worker"])
    assert NAMES <= set(env)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    amqp, database = urlsplit(settings.amqp_url_value), urlsplit(settings.database_url_value)
    # On the host's network the worker reaches the services at the ports they publish.
    assert (amqp.scheme, amqp.hostname, amqp.port) == ("amqp", "127.0.0.1", 5672)
    assert (database.scheme, database.hostname, database.port) == (
        "postgresql+psycopg",
        "127.0.0.1",
        5432,
    )
    services = compose["services"]
    assert (5672, "tcp") in published(services["rabbitmq"])
    assert ("127.0.0.1", 5432, "tcp") in published_on(services["postgres"])
    # FreeSWITCH shares the host's network with it: its event socket is on loopback.
    assert settings.esl_host == "127.0.0.1"
    assert (settings.esl_port, settings.http_port, settings.socket_port) == (8021, 8080, 8084)
    assert settings.node_id
    assert settings.flashcall_key()  # the worker starts with it
    assert settings.default_gateway in settings.gateways
    sofia = configuration(assemble().document, "sofia.conf")
    gateways = {g.get("name") for g in sofia.iter("gateway")}
    assert set(settings.gateways) <= gateways


def test_secrets_agree_between_the_worker_and_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker = environment(services["worker"])
    amqp = urlsplit(worker["CALLWORKER_AMQP_URL"])
    rabbitmq = environment(services["rabbitmq"])
    assert (amqp.username, amqp.password) == (
        rabbitmq["RABBITMQ_DEFAULT_USER"],
        rabbitmq["RABBITMQ_DEFAULT_PASS"],
    )
    database = urlsplit(worker["CALLWORKER_DATABASE_URL"])
    postgres = environment(services["postgres"])
    assert (database.username, database.password, database.path) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        "/" + postgres["POSTGRES_DB"],
    )
    assert (
        worker["CALLWORKER_ESL_PASSWORD"] == environment(services["freeswitch"])["FS_ESL_PASSWORD"]
        == REQUIRED["ESL_PASSWORD"]
    )
    assert worker["CALLWORKER_FLASHCALL_HMAC_KEY"] == REQUIRED["FLASHCALL_HMAC_KEY"]


def test_freeswitch_may_hand_calls_to_the_worker_and_nobody_else(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    for key, value in environment(services["worker"]).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    # FreeSWITCH and its worker share the host's network: the socket stays on loopback ...
    assert settings.socket_host == "127.0.0.1"
    assert environment(services["freeswitch"])["FS_CALLWORKER_HOST"] == settings.socket_host
    # ... and admits FreeSWITCH's address (CALLWORKER_ESL_HOST) only.
    assert settings.socket_allow == () and settings.esl_host == "127.0.0.1"
    peers = allow_list(settings.socket_allow, settings.esl_host)
    assert peers.allows("127.0.0.1") and not peers.allows("172.17.0.2")


def test_freeswitch_and_its_worker_run_on_the_host_network(compose: dict[str, Any]) -> None:
    """SIP and SDP must carry the host's address, or the far end's BYEs and RTP never arrive."""
    services = compose["services"]
    for name in ON_THE_HOST:
        assert services[name].get("network_mode") == "host", name
        # Docker refuses to publish ports of a container on the host's network.
        assert "ports" not in services[name] and "networks" not in services[name], name
    for name in set(services) - set(ON_THE_HOST):
        assert "network_mode" not in services[name], name


def test_published_ports_match_the_contract(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {(5672, "tcp"), (15672, "tcp")} <= published(services["rabbitmq"])
    # Only the worker (on this host) reaches the database through its published port.
    assert {address for address, _, _ in published_on(services["postgres"])} == {"127.0.0.1"}


def test_worker_waits_for_a_healthy_broker_and_database(compose: dict[str, Any]) -> None:
    services = compose["services"]
    depends = services["worker"]["depends_on"]
    for name in ("rabbitmq", "postgres"):
        assert depends[name]["condition"] == "service_healthy"
        assert services[name]["healthcheck"]["test"]
    assert set(environment(services["postgres"])) >= {
        "POSTGRES_DB",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
    }


def test_images_are_the_chosen_versions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["postgres"]["image"] == "postgres:16"
    found = re.fullmatch(r"rabbitmq:(\d+)\.(\d+)[\w.-]*-management", services["rabbitmq"]["image"])
    assert found is not None and (int(found[1]), int(found[2])) >= (3, 13)
    image, _, tag = services["freeswitch"]["image"].partition(":")
    assert image and tag and tag != "latest"


def test_freeswitch_reads_this_repository_configuration(compose: dict[str, Any]) -> None:
    mounts = [str(v).split(":") for v in compose["services"]["freeswitch"]["volumes"]]
    source, _, mode = next(m for m in mounts if m[1] == "/etc/freeswitch")
    assert (DOCKER / source).resolve() == ROOT / "freeswitch-conf"
    assert (ROOT / "freeswitch-conf" / "freeswitch.xml").is_file()
    assert mode == "ro"


def test_freeswitch_environment_fits_the_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    fs_env = environment(services["freeswitch"])
    overrides = set(re.findall(r"\$(FS_\w+)", (ROOT / "freeswitch-conf/vars.xml").read_text()))
    assert {key for key in fs_env if key.startswith("FS_")} <= overrides
    document = assemble(fs_env).document
    worker = environment(services["worker"])
    # Both on the host's network: the dialplan hands calls to the worker on loopback ...
    handoff = route(document, "public", "+15552001234")
    socket = f"{fs_env['FS_CALLWORKER_HOST']}:{worker['CALLWORKER_SOCKET_PORT']} async full"
    assert ("socket", socket) in handoff.actions
    assert fs_env["FS_CALLWORKER_HOST"] == worker["CALLWORKER_SOCKET_HOST"] == "127.0.0.1"
    # ... and the event socket stays on loopback, where its ACL admits the worker.
    esl = params(configuration(document, "event_socket.conf").find("settings"))
    assert esl["listen-ip"] == worker["CALLWORKER_ESL_HOST"] == "127.0.0.1"
    assert esl["listen-port"] == worker["CALLWORKER_ESL_PORT"]
    assert esl["password"] == worker["CALLWORKER_ESL_PASSWORD"]
    assert acl_allows(document, esl["apply-inbound-acl"], worker["CALLWORKER_ESL_HOST"])
    assert not acl_allows(document, esl["apply-inbound-acl"], "172.17.0.2")  # a bridge container


def test_freeswitch_rtp_ports_hold_its_sessions(compose: dict[str, Any]) -> None:
    fs = compose["services"]["freeswitch"]
    core = params(configuration(assemble(environment(fs)).document, "switch.conf").find("settings"))
    start, end = int(core["rtp-start-port"]), int(core["rtp-end-port"])
    assert (end - start + 1) // 2 >= int(core["max-sessions"])


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text(encoding="utf-8"))
    lines = (line.strip() for line in joined.splitlines())
    pairs = (line.split(None, 1) for line in lines if line and not line.startswith("#"))
    return [(word.upper(), rest) for word, rest in pairs]


def _copies() -> list[tuple[list[str], PurePosixPath]]:
    """(sources, destination) of every COPY/ADD from the build context, WORKDIR applied."""
    workdir, copies = PurePosixPath("/"), []
    for instruction, args in _instructions():
        if instruction == "WORKDIR":
            workdir = workdir / args
        elif instruction in ("COPY", "ADD") and "--from=" not in args:
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            copies.append((words[:-1], workdir / words[-1]))
    return copies


def test_dockerfile_runs_callworker_as_a_non_root_user() -> None:
    instructions = _instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [args for instruction, args in instructions if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    last = {instruction: args for instruction, args in instructions}
    assert json.loads(last["ENTRYPOINT"]) == ["callworker"]
    assert json.loads(last["CMD"]) == ["run"]
    assert {"8080", "8084"} <= set(last["EXPOSE"].split())


def test_dockerfile_healthcheck_asks_healthz_without_curl() -> None:
    check = dict(_instructions())["HEALTHCHECK"]
    command = json.loads(check.split(" CMD ", 1)[1])
    assert command[0] == "python" and "urllib" in command[-1] and "/healthz" in command[-1]


def test_dockerfile_installs_the_package_with_its_migrations_not_in_place() -> None:
    copies = _copies()
    sources = {source.rstrip("/") for group, _ in copies for source in group}
    assert {"pyproject.toml", "callworker"} <= sources
    missing = sorted(source for source in sources if not (ROOT / source).exists())
    assert missing == [], f"not in the repository: {missing}"
    # The migrations travel inside the package; nothing is needed beside it.
    assert (ROOT / "callworker" / "store" / "migrations" / "env.py").is_file()
    assert not {"migrations", "alembic.ini"} & sources
    destination = {source.rstrip("/"): dest for group, dest in copies for source in group}
    assert destination["callworker"].parent == destination["pyproject.toml"]
    runs = [args for instruction, args in _instructions() if instruction == "RUN"]
    install = next(args for args in runs if "pip install --no-deps ." in args)
    assert " -e " not in f" {install} " and "--editable" not in install
    assert not any(re.search(r"pip install .*(-e|--editable)\b", args) for args in runs)


def test_the_dependencies_the_image_installs_are_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["dependencies"] and all("==" in dep for dep in project["dependencies"])


def test_build_context_leaves_out_the_virtualenv_and_git() -> None:
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", ".git"} <= set(ignored)
