"""freeswitch-conf/, assembled and routed the way FreeSWITCH does it.

Strategy: FreeSWITCH's preprocessor (switch_xml.c) is line based. On each line it expands
$${name}, drops the line if it holds <include>, </include> or <?, runs an X-PRE-PROCESS
directive (set; env-set from the environment; include, a glob taken relative to the
directory of the including file) and copies any other line. `assemble` does the same and
parses the result. `route` evaluates the XML dialplan with the part of mod_dialplan_xml
the configuration uses (a test asserts it uses no more): extensions in order, every
condition of an extension must match its field against its regex, and the first matching
extension without continue="true" ends the hunt.
"""

from __future__ import annotations

import glob
import ipaddress
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callworker.config import Settings

__all__ = ["CONF", "Assembly", "Route", "acl_allows", "assemble", "route"]

CONF = Path(__file__).resolve().parents[2] / "freeswitch-conf"
README = CONF / "README.md"
DIRECTIVE = re.compile(r'<X-PRE-PROCESS\s+cmd="([^"]*)"\s+data="([^"]*)"\s*/>', re.IGNORECASE)
VARIABLE = re.compile(r"\$\$\{([^}]*)\}")
MODULES = {
    "mod_console",
    "mod_logfile",
    "mod_event_socket",
    "mod_sofia",
    "mod_commands",
    "mod_dptools",
    "mod_dialplan_xml",
    "mod_loopback",
    "mod_sndfile",
    "mod_tone_stream",
}
# Which loaded module provides each dialplan application the configuration uses.
APPLICATIONS = {
    "set": "mod_dptools",
    "hangup": "mod_dptools",
    "answer": "mod_dptools",
    "park": "mod_dptools",
    "ring_ready": "mod_dptools",
    "sleep": "mod_dptools",
    "socket": "mod_event_socket",
}
DEFAULTS = Settings.model_fields


@dataclass
class Assembly:
    """The preprocessed document, the global variables, and what went wrong on the way."""

    document: ET.Element
    variables: dict[str, str]
    files: list[Path]
    problems: list[str]


@dataclass
class _State:
    env: Mapping[str, str]
    variables: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def assemble(env: Mapping[str, str] | None = None) -> Assembly:
    """freeswitch.xml as FreeSWITCH assembles it, given the environment of its process."""
    state = _State(env=env or {})
    _preprocess(CONF / "freeswitch.xml", state, depth=0)
    document = ET.fromstring("\n".join(state.lines))
    return Assembly(document, state.variables, state.files, state.problems)


def _expand(line: str, state: _State, where: str) -> str:
    def value(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in state.variables:
            state.problems.append(f"{where}: $${{{name}}} is used before it is set")
        return state.variables.get(name, "")

    return VARIABLE.sub(value, line)


def _preprocess(path: Path, state: _State, depth: int) -> None:
    assert depth < 10, f"includes nest too deep at {path}"
    state.files.append(path.resolve())
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path.resolve().relative_to(CONF)}:{number}"
        line = _expand(raw, state, where)
        if "<include>" in raw or "</include>" in raw or "<?" in raw:
            continue
        found = DIRECTIVE.search(line)
        if found is None:
            if "x-pre-process" in line.lower():
                state.problems.append(f"{where}: directive FreeSWITCH would misread")
            state.lines.append(line)
            continue
        _directive(found.group(1).lower(), found.group(2), path, state, where, depth)


def _directive(cmd: str, data: str, path: Path, state: _State, where: str, depth: int) -> None:
    if cmd == "set":
        name, _, value = data.partition("=")
        state.variables[name.strip()] = value.strip()
    elif cmd == "env-set":
        name, _, source = data.partition("=")
        if not source.startswith("$"):
            state.problems.append(f"{where}: env-set needs name=$ENVIRONMENT_VARIABLE")
        elif source[1:] in state.env:
            state.variables[name] = state.env[source[1:]]
    elif cmd == "include":
        matches = sorted(glob.glob(str(path.parent / data)))
        if not matches:
            state.problems.append(f"{where}: include {data} matches no file")
        for match in matches:
            _preprocess(Path(match), state, depth + 1)
    else:
        state.problems.append(f"{where}: unexpected directive {cmd}")


def configuration(document: ET.Element, name: str) -> ET.Element:
    found = document.find(f"./section[@name='configuration']/configuration[@name='{name}']")
    assert found is not None, f"configuration {name} is missing"
    return found


def params(element: ET.Element | None) -> dict[str, str]:
    assert element is not None
    return {p.get("name", ""): p.get("value", "") for p in element.findall("param")}


def acl_allows(document: ET.Element, list_name: str, address: str) -> bool:
    """Whether a default-deny ACL list of allow nodes admits the address."""
    acl = configuration(document, "acl.conf").find(f"./network-lists/list[@name='{list_name}']")
    assert acl is not None, f"ACL list {list_name} is missing"
    assert acl.get("default") == "deny"
    nodes = acl.findall("node")
    assert all(node.get("type") == "allow" for node in nodes)
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(node.get("cidr", "")) for node in nodes)


@dataclass(frozen=True)
class Route:
    """Where the dialplan sends a number: matched extensions and the actions they queue."""

    extensions: tuple[str, ...]
    actions: tuple[tuple[str, str], ...]
    ended: bool

    @property
    def final(self) -> str | None:
        return self.extensions[-1] if self.ended else None

    def variable(self, name: str) -> str | None:
        value = None
        for application, data in self.actions:
            if application == "set" and data.startswith(f"{name}="):
                value = data.partition("=")[2]
        return value


def route(document: ET.Element, context: str, number: str) -> Route:
    """Hunt the context for a call to number, as mod_dialplan_xml does."""
    found = document.find(f"./section[@name='dialplan']/context[@name='{context}']")
    assert found is not None, f"context {context} is missing"
    names: list[str] = []
    actions: list[tuple[str, str]] = []
    for extension in found.findall("extension"):
        queued = _match(extension, {"destination_number": number})
        if queued is None:
            continue
        names.append(extension.get("name", ""))
        actions.extend(queued)
        if extension.get("continue") != "true":
            return Route(tuple(names), tuple(actions), ended=True)
    return Route(tuple(names), tuple(actions), ended=False)


def _match(extension: ET.Element, fields: Mapping[str, str]) -> list[tuple[str, str]] | None:
    queued: list[tuple[str, str]] = []
    for condition in extension.findall("condition"):
        found = re.search(condition.get("expression", ""), fields[condition.get("field", "")])
        if found is None:
            return None
        for action in condition.findall("action"):
            queued.append((action.get("application", ""), _captures(action.get("data", ""), found)))
    return queued


def _captures(data: str, found: re.Match[str]) -> str:
    """$1..$9 in action data replaced by the condition's regex groups."""
    return re.sub(r"\$(\d)", lambda ref: found.group(int(ref.group(1))) or "", data)


def _documented_routes() -> list[tuple[str, str, str, str, str]]:
    """The rows of the routing table in freeswitch-conf/README.md."""
    rows: list[tuple[str, str, str, str, str]] = []
    in_table = False
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if cells[:2] == ["context", "dialled number"]:
            in_table = True
        elif in_table and line.startswith("|") and not set(line) <= set("|-: "):
            rows.append((cells[0], cells[1], cells[2], cells[3], cells[4]))
        elif in_table and not line.startswith("|"):
            break
    return rows


def test_every_file_is_well_formed_xml() -> None:
    files = sorted(CONF.rglob("*.xml"))
    assert len(files) >= 10
    for path in files:
        ET.parse(path)  # raises on the first malformed file


def test_includes_resolve_and_every_file_is_reached() -> None:
    assembly = assemble()
    assert assembly.problems == []
    assert assembly.document.tag == "document"
    assert sorted(assembly.files) == sorted(p.resolve() for p in CONF.rglob("*.xml"))


def test_include_tags_stand_on_lines_of_their_own() -> None:
    # FreeSWITCH drops a whole line that holds one of them.
    for path in CONF.rglob("*.xml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if "<include>" in line or "</include>" in line:
                assert line.strip() in ("<include>", "</include>"), f"{path}: {line}"


def test_every_variable_is_set_in_vars_xml_and_used() -> None:
    vars_text = (CONF / "vars.xml").read_text(encoding="utf-8")
    defined = {
        m.group(2).partition("=")[0].strip()
        for m in DIRECTIVE.finditer(vars_text)
        if m.group(1).lower() == "set"
    }
    used = {
        name
        for path in CONF.rglob("*.xml")
        for name in VARIABLE.findall(path.read_text(encoding="utf-8"))
    }
    assert used - defined == set()
    assert defined - used == set(), "settings nothing reads"


def test_environment_overrides_are_named_after_their_setting() -> None:
    vars_text = (CONF / "vars.xml").read_text(encoding="utf-8")
    seen: set[str] = set()
    for cmd, data in DIRECTIVE.findall(vars_text):
        name, _, source = data.partition("=")
        if cmd.lower() == "set":
            seen.add(name)
        elif cmd.lower() == "env-set":
            assert name in seen, f"{name} is overridden before its default is set"
            assert source == f"$FS_{name.upper()}"


def test_event_socket_takes_its_settings_from_variables() -> None:
    raw = params(ET.parse(CONF / "autoload_configs/event_socket.conf.xml").find("settings"))
    for name in ("listen-ip", "listen-port", "password", "apply-inbound-acl"):
        assert re.fullmatch(r"\$\$\{\w+\}", raw[name]), name
    document = assemble().document
    settings = params(configuration(document, "event_socket.conf").find("settings"))
    assert int(settings["listen-port"]) == DEFAULTS["esl_port"].default
    assert settings["password"] == DEFAULTS["esl_password"].default.get_secret_value()
    assert acl_allows(document, settings["apply-inbound-acl"], DEFAULTS["esl_host"].default)
    assert not acl_allows(document, settings["apply-inbound-acl"], "203.0.113.7")


def test_event_socket_admits_the_network_named_in_the_environment() -> None:
    document = assemble({"FS_ESL_ALLOW_CIDR": "10.8.0.0/16"}).document
    acl = params(configuration(document, "event_socket.conf").find("settings"))["apply-inbound-acl"]
    assert acl_allows(document, acl, "10.8.3.4")
    assert not acl_allows(document, acl, "10.9.0.1")


def test_modules_are_exactly_the_documented_ones() -> None:
    loaded = [
        m.get("module") for m in configuration(assemble().document, "modules.conf").iter("load")
    ]
    assert len(loaded) == len(set(loaded))
    assert set(loaded) == MODULES
    assert set(re.findall(r"\bmod_[a-z_]+\b", README.read_text(encoding="utf-8"))) >= MODULES


def test_dialplan_applications_come_from_loaded_modules() -> None:
    used = {a.get("application") for a in assemble().document.iter("action")}
    assert used <= set(APPLICATIONS), used - set(APPLICATIONS)
    assert {APPLICATIONS[name] for name in used if name} <= MODULES


def test_evaluator_models_everything_the_dialplan_uses() -> None:
    dialplan = assemble().document.find("./section[@name='dialplan']")
    assert dialplan is not None
    for extension in dialplan.iter("extension"):
        assert set(extension.attrib) <= {"name", "continue"}
        assert {child.tag for child in extension} == {"condition"}
        for condition in extension:
            assert set(condition.attrib) == {"field", "expression"}
            assert condition.get("field") == "destination_number"
            assert {child.tag for child in condition} <= {"action"}


def test_default_gateway_is_on_the_external_profile() -> None:
    document = assemble().document
    profile = configuration(document, "sofia.conf").find("./profiles/profile[@name='external']")
    assert profile is not None
    gateways = {g.get("name") for g in profile.findall("./gateways/gateway")}
    assert DEFAULTS["default_gateway"].default in gateways
    assert set(DEFAULTS["gateways"].default) <= gateways


def test_carrier_calls_enter_the_public_context_from_trunk_addresses_only() -> None:
    document = assemble({"FS_SIP_TRUNK_CIDR": "198.51.100.0/24"}).document
    profile = configuration(document, "sofia.conf").find("./profiles/profile[@name='external']")
    assert profile is not None
    settings = params(profile.find("settings"))
    assert settings["context"] == "public"
    assert document.find("./section[@name='dialplan']/context[@name='public']") is not None
    assert acl_allows(document, settings["apply-inbound-acl"], "198.51.100.20")
    assert not acl_allows(document, settings["apply-inbound-acl"], "203.0.113.7")


# Calls per second the worker is published to place (the benchmark and the README); a
# click-to-call takes two sessions.
PUBLISHED_CALLS_PER_SECOND = 500


def test_rtp_port_range_holds_max_sessions() -> None:
    """Each session takes an even port for RTP and the odd one above it for RTCP."""
    settings = params(configuration(assemble().document, "switch.conf").find("settings"))
    start, end = int(settings["rtp-start-port"]), int(settings["rtp-end-port"])
    assert 1024 < start < end < 65536 and start % 2 == 0
    assert (end - start + 1) // 2 >= int(settings["max-sessions"]) >= 1000


def test_sessions_per_second_admit_the_published_call_rate() -> None:
    """Above it FreeSWITCH fails originates at once with DESTINATION_OUT_OF_ORDER."""
    settings = params(configuration(assemble().document, "switch.conf").find("settings"))
    assert int(settings["sessions-per-second"]) >= 2 * PUBLISHED_CALLS_PER_SECOND


ROUTES = _documented_routes()


def test_readme_documents_routes_for_both_contexts() -> None:
    assert {row[0] for row in ROUTES} == {"public", "callworker"}
    assert any(row[2] == "—" for row in ROUTES), "no refused number is documented"


@pytest.mark.parametrize(("context", "number", "extension", "tenant", "action"), ROUTES)
def test_documented_number_routes_as_documented(
    context: str, number: str, extension: str, tenant: str, action: str
) -> None:
    result = route(assemble().document, context, number)
    if extension == "—":
        assert result.extensions == ()
        return
    assert result.final == extension
    assert result.variable("callworker_tenant") == (None if tenant == "—" else tenant)
    application, _, data = action.partition(" ")
    assert (application, data) in result.actions
    if application == "socket":
        port = DEFAULTS["socket_port"].default
        assert data == f"127.0.0.1:{port} async full"
        assert result.actions.index((application, data)) < len(result.actions) - 1


@pytest.mark.parametrize("number", sorted({row[1] for row in ROUTES if row[0] == "public" and row[2] != "—"}))
def test_inbound_calls_are_answered_before_the_hand_over(number: str) -> None:
    """A caller is not left in silence while the worker takes the call (it cannot answer)."""
    actions = [application for application, _ in route(assemble().document, "public", number).actions]
    assert "answer" in actions and "socket" in actions
    assert actions.index("answer") < actions.index("socket")
    assert set(actions[actions.index("answer") + 1 : actions.index("socket")]) <= {"set"}


def test_inbound_calls_go_to_the_worker_named_in_the_environment() -> None:
    env = {"FS_CALLWORKER_HOST": "worker", "FS_CALLWORKER_SOCKET_PORT": "9084"}
    result = route(assemble(env).document, "public", "+15552001234")
    assert ("socket", "worker:9084 async full") in result.actions
    assert result.variable("callworker_tenant") == "acme"
