"""No command field ever reaches the event socket as a second command or a second dial string.

Strategy: hypothesis throws arbitrary text (and curated attacks) at every command field
that can reach FreeSWITCH, through the real path: ``decode_command`` -> ``CallService``
-> the journal on SQLite -> a port that encodes each command exactly as the ESL
connection writes it to the socket. Whatever is accepted must be the one command the
builder means, with the value unchanged; whatever is not must be refused with a
dead-lettering contract error before anything is written. The builders get the same
treatment on their own. One integration test sends the nastiest payloads through
RabbitMQ to the real worker and reads what the simulator received.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from gevent.queue import Queue
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from callworker.app import Worker
from callworker.bus.probe import Probe
from callworker.calls.fsevents import EventPump
from callworker.calls.journal import Journal
from callworker.calls.media import Media
from callworker.calls.service import CallService, Delivered
from callworker.contract import HANGUP_CAUSES, ContractError, ErrorCode, decode_command
from callworker.errors import AlreadyStored, UnsafeValue
from callworker.esl import builders
from callworker.esl.codec import Event, encode_command
from callworker.simulator import Simulator
from callworker.store import make_engine, migrate
from tests.integration.conftest import dead_letters
from tests.security.eslgrammar import (
    ATTACKS,
    EXTRA_VALUE,
    EXTRA_VARIABLE,
    GATEWAY_NAME,
    LIVE_CALL,
    MISSING,
    NAME,
    PHONE,
    PRIVACY_VARIABLES,
    TENANT_NAME,
    UUID_ANY_CASE,
    UUID_LOWER,
    fits,
    json_values,
    names,
    nasty,
    parse_originate,
    phones,
    some_wild,
    spliced,
    split_frame,
    uuids,
    uuids_any_case,
)

TENANT = "acme"
GATEWAYS = ("default", "carrier-1.eu")

# ------------------------------------------------------------------ the rig


class RecordingPort:
    """Stands in for EslConnection: encodes each command exactly as it would be written."""

    def __init__(self) -> None:
        self.connected = True
        self.sent: list[bytes] = []

    def wait_connected(self, timeout: float) -> bool:
        return self.connected

    def api(self, command: str, *, timeout: float | None = None) -> str:
        self.sent.append(encode_command(f"api {command}"))
        return "+OK Success\n"

    def bgapi(self, command: str, *, job_uuid: str | None = None, timeout: float | None = None) -> str:
        headers = [("Job-UUID", job_uuid)] if job_uuid is not None else []
        self.sent.append(encode_command(f"bgapi {command}", headers))
        return job_uuid or str(uuid.uuid4())


@dataclass(frozen=True)
class Placed:
    """A call a rig's journal holds: whose it is, and whether it was answered."""

    tenant: str
    answered: bool


@dataclass
class Rig:
    service: CallService
    journal: Journal
    port: RecordingPort
    # Every call this rig's journal holds, by call id: the model the tests check against.
    # Only an accepted originate adds one, and nothing ends one (no FreeSWITCH events
    # arrive here), so the model stays true from one example to the next.
    calls: dict[str, Placed] = field(default_factory=dict)

    def new_sends(self, run: Callable[[], Any]) -> tuple[Any, list[bytes]]:
        """Run a command; return its outcome (reply or ContractError) and what it wrote."""
        before = len(self.port.sent)
        try:
            outcome: Any = run()
        except (ContractError, AlreadyStored) as error:
            outcome = error
        return outcome, self.port.sent[before:]

    def place(self, tenant: str, call_id: str, *, answered: bool) -> None:
        """A call of ``tenant`` for the commands to act on, answered if asked."""
        self.service.execute(
            _decode(tenant, "originate", {"destination_number": "+15551230001", "call_id": call_id}),
            Delivered(None, None),
        )
        if answered:
            EventPump(Queue(), self.journal).handle(
                Event({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": call_id,
                       "Event-Date-Timestamp": "1700000000000000"}, None, encoded=False))
            self.journal.run(lambda unit: None)
        self.calls[call_id] = Placed(tenant, answered)


# Besides LIVE_CALL (acme's, answered), the hangup, hold and mute test acts on these.
RINGING_CALL = "5d9e3c1a-7b2f-4e8d-9a6c-1f0b3e5d7c9a"  # acme's, not answered
OTHER_TENANT = "globex"
OTHER_TENANT_CALL = "c4f1a2b3-9d8e-4c7b-8a6f-2e1d0c9b8a7f"  # globex's, answered


@contextmanager
def _new_rig(path: Path) -> Iterator[Rig]:
    url = f"sqlite:///{path / 'calls.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    journal = Journal(engine, node="fs1", notify=lambda items: None)
    journal.start()
    service = CallService(journal=journal, port=(port := RecordingPort()), engine=engine, node="fs1",
                          gateways=GATEWAYS, default_gateway="default")
    try:
        yield Rig(service, journal, port)
    finally:
        journal.stop()
        engine.dispose()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """The originate test's rig: one answered call, then every call the examples place."""
    with _new_rig(tmp_path_factory.mktemp("originate")) as built:
        built.place(TENANT, LIVE_CALL, answered=True)
        yield built


@pytest.fixture(scope="module")
def call_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """The hangup, hold and mute test's own rig: three calls, and no example adds one."""
    with _new_rig(tmp_path_factory.mktemp("call-commands")) as built:
        built.place(TENANT, LIVE_CALL, answered=True)
        built.place(TENANT, RINGING_CALL, answered=False)
        built.place(OTHER_TENANT, OTHER_TENANT_CALL, answered=True)
        yield built


def _decode(tenant: str, command_type: str, fields: dict[str, Any]) -> Any:
    body = {"v": 1, "command_id": str(uuid.uuid4()), "type": command_type, **fields}
    return decode_command(f"{tenant}.{command_type}", json.dumps(body).encode())


def _assert_refused(outcome: Any, sent: list[bytes]) -> None:
    # AlreadyStored: a call id in use, which the intake then answers as VALIDATION_ERROR.
    assert isinstance(outcome, (ContractError, AlreadyStored)), outcome
    assert isinstance(outcome, AlreadyStored) or outcome.dead_letter, outcome
    assert sent == []


# ---------------------------------------------------------- what is drawn

def _spellings(call_id: str) -> list[str]:
    return [call_id, call_id.upper(), call_id[:8].upper() + call_id[8:]]


known_call = st.sampled_from([s for c in (LIVE_CALL, RINGING_CALL, OTHER_TENANT_CALL) for s in _spellings(c)])
ORIGINATE_VALID: dict[str, st.SearchStrategy[Any]] = {
    "tenant": st.one_of(st.just(TENANT), st.from_regex(TENANT_NAME, fullmatch=True)),
    "destination_number": phones,
    "caller_id_number": st.one_of(st.just(MISSING), st.none(), phones),
    "caller_id_name": st.one_of(st.just(MISSING), st.none(), names),
    "call_id": st.one_of(st.just(MISSING), st.none(), uuids_any_case),
    "gateway": st.one_of(st.just(MISSING), st.none(), st.sampled_from(GATEWAYS)),
    "timeout_s": st.one_of(st.just(MISSING), st.integers(5, 120)),
    "privacy": st.one_of(st.just(MISSING), st.booleans()),
}
ORIGINATE_WILD: dict[str, st.SearchStrategy[Any]] = {
    "tenant": nasty(st.just(TENANT)),
    "destination_number": st.one_of(nasty(phones), json_values),
    "caller_id_number": st.one_of(nasty(phones), json_values),
    "caller_id_name": st.one_of(nasty(names), json_values),
    "call_id": st.one_of(nasty(uuids_any_case), json_values),
    "gateway": st.one_of(nasty(st.sampled_from(GATEWAYS)), json_values),
    "timeout_s": st.one_of(st.integers(-5, 200), json_values, st.just("30"), st.just(30.0)),
    "privacy": st.one_of(json_values, st.just("true")),
}
# Keys the contract does not define: ignored, whatever they hold.
SMUGGLED = st.dictionaries(
    st.sampled_from(["dial_string", "origination_uuid", "originate_timeout", "variables", "tenant",
                     "callworker_tenant", "endpoint", "app"]),
    st.one_of(st.sampled_from(ATTACKS), st.dictionaries(st.just("api_on_answer"), st.just("hupall"))),
    max_size=3,
)


def _originate_ok(fields: dict[str, Any], tenant: str, used: set[str]) -> bool:
    """Whether the contract must accept these values (CONTRACT section 3)."""
    def optional(name: str, check: Callable[[Any], bool]) -> bool:
        value = fields.get(name)
        return value is None or check(value)

    timeout = fields.get("timeout_s", 30)
    return (
        fits(TENANT_NAME, tenant)
        and fits(PHONE, fields.get("destination_number"))
        and optional("caller_id_number", lambda v: fits(PHONE, v))
        and optional("caller_id_name", lambda v: fits(NAME, v))
        and optional("call_id", lambda v: fits(UUID_ANY_CASE, v) and v.lower() not in used)
        and optional("gateway", lambda v: isinstance(v, str) and v in GATEWAYS)
        and type(timeout) is int and 5 <= timeout <= 120
        and type(fields.get("privacy", False)) is bool
    )


FUZZ = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------ through the service


@FUZZ
@given(values=some_wild(ORIGINATE_VALID, ORIGINATE_WILD), smuggled=SMUGGLED)
def test_originate_sends_one_clean_dial_string_or_nothing(
    rig: Rig, values: dict[str, Any], smuggled: dict[str, Any]
) -> None:
    fields = {k: v for k, v in values.items() if v is not MISSING}
    tenant = fields.pop("tenant")
    body = {**smuggled, **fields}
    expected_ok = _originate_ok(fields, tenant, set(rig.calls))

    def run() -> Any:
        command = _decode(tenant, "originate", body)
        return rig.service.execute(command, Delivered(None, None))

    outcome, sent = rig.new_sends(run)
    event("accepted" if expected_ok else "refused")
    if not expected_ok:
        _assert_refused(outcome, sent)
        return
    assert not isinstance(outcome, ContractError), (outcome, body)
    call_id = outcome["result"]["call_id"]
    rig.calls[call_id] = Placed(tenant, answered=False)
    assert len(sent) == 1
    line, headers = split_frame(sent[0])
    assert line.startswith("bgapi ") and headers == {"Job-UUID": call_id}
    variables, gateway, number = parse_originate(line[len("bgapi "):])
    # Every accepted value arrives unchanged; nothing else arrives.
    assert number == fields["destination_number"]
    assert gateway == (fields.get("gateway") or "default")
    assert variables["origination_uuid"] == call_id
    if fields.get("call_id"):
        assert call_id == fields["call_id"].lower()
    assert variables["originate_timeout"] == str(fields.get("timeout_s", 30))
    assert variables.get("origination_caller_id_number") == fields.get("caller_id_number")
    name = fields.get("caller_id_name")
    assert variables.get("origination_caller_id_name") == (f"'{name}'" if name else None)
    hidden = PRIVACY_VARIABLES & set(variables)
    assert hidden == (PRIVACY_VARIABLES if fields.get("privacy") else set())
    assert variables["callworker_tenant"] == tenant


causes = st.sampled_from(sorted(HANGUP_CAUSES))
CALL_VALID: dict[str, st.SearchStrategy[Any]] = {
    "call_id": st.one_of(known_call, uuids_any_case),
    "cause": st.one_of(st.just(MISSING), causes),
    "flag": st.one_of(st.just(MISSING), st.booleans()),
}
CALL_WILD: dict[str, st.SearchStrategy[Any]] = {
    "call_id": st.one_of(nasty(known_call), json_values),
    "cause": st.one_of(nasty(causes), st.sampled_from(["normal_clearing", "NONE", "USER_BUSY "]), json_values),
    "flag": st.one_of(json_values, st.sampled_from(["true", "off", 1, 0])),
}


def _refusal(rig: Rig, tenant: str, command_type: str, call_id: str) -> ErrorCode | None:
    """The error a valid hangup, hold or mute of ``call_id`` by ``tenant`` must answer; None: ok."""
    placed = rig.calls.get(call_id)
    if placed is None or placed.tenant != tenant:
        return ErrorCode.CALL_NOT_FOUND  # another tenant's call does not exist for this one
    if command_type in ("hold", "mute") and not placed.answered:
        return ErrorCode.CALL_NOT_ACTIVE  # only an answered call can be held or muted
    return None


@FUZZ
@given(command_type=st.sampled_from(["hangup", "hold", "mute"]), values=some_wild(CALL_VALID, CALL_WILD))
def test_hangup_hold_and_mute_send_one_clean_command_or_nothing(
    call_rig: Rig, command_type: str, values: dict[str, Any]
) -> None:
    rig = call_rig
    call_id, cause, flag = values["call_id"], values["cause"], values["flag"]
    fields: dict[str, Any] = {"call_id": call_id}
    flag_name = {"hangup": None, "hold": "hold", "mute": "muted"}[command_type]
    if command_type == "hangup" and cause is not MISSING:
        fields["cause"] = cause
    if flag_name and flag is not MISSING:
        fields[flag_name] = flag
    ok = fits(UUID_ANY_CASE, call_id)
    if command_type == "hangup":
        cause_value = fields.get("cause", "NORMAL_CLEARING")
        ok = ok and isinstance(cause_value, str) and cause_value in HANGUP_CAUSES
    elif flag_name:
        ok = ok and type(fields.get(flag_name, True)) is bool

    outcome, sent = rig.new_sends(
        lambda: rig.service.execute(_decode(TENANT, command_type, fields), Delivered(None, None))
    )
    event(f"{command_type} {'accepted' if ok else 'refused'}")
    if not ok:
        _assert_refused(outcome, sent)
        return
    assert not isinstance(outcome, ContractError), (outcome, fields)
    target = call_id.lower()
    refusal = _refusal(rig, TENANT, command_type, target)
    if refusal is not None:
        assert not outcome["ok"] and outcome["error"]["code"] == refusal, outcome
        assert sent == []
        return
    assert outcome["ok"], outcome
    assert len(sent) <= 1
    for payload in sent:
        line, headers = split_frame(payload)
        assert headers == {}
        expected = {
            "hangup": f"api uuid_kill {target} {fields.get('cause', 'NORMAL_CLEARING')}",
            "hold": f"api uuid_hold {target}" if fields.get("hold", True) else f"api uuid_hold off {target}",
            "mute": f"api uuid_audio {target} start read mute {1 if fields.get('muted', True) else 0}",
        }[command_type]
        assert line == expected


# ------------------------------------------------------------------ media

SOUNDS_DIR = "/nonexistent/callworker-sounds"  # not here: the worker cannot check the file, FreeSWITCH would
RECORDINGS_DIR = "/var/lib/callworker-test/recordings"
SOUND = r"[A-Za-z0-9_-]{1,64}\.wav"
TONE = r"[0-9]{1,5},[0-9]{1,5},[0-9]{1,5}"
DIGITS = r"[0-9*#A-D]{1,32}"
sounds = st.from_regex(SOUND, fullmatch=True)
tones = st.from_regex(TONE, fullmatch=True)
digit_strings = st.from_regex(DIGITS, fullmatch=True)
MEDIA_VALID: dict[str, st.SearchStrategy[Any]] = {
    "call_id": st.one_of(known_call, uuids_any_case),
    "sound": st.one_of(st.just(MISSING), sounds),
    "tone": st.one_of(st.just(MISSING), tones),
    "loops": st.one_of(st.just(MISSING), st.integers(1, 100)),
    "digits": digit_strings,
    "action": st.sampled_from(["start", "stop"]),
}
MEDIA_WILD: dict[str, st.SearchStrategy[Any]] = {
    "call_id": st.one_of(nasty(known_call), json_values),
    "sound": st.one_of(nasty(sounds), st.sampled_from(["../../etc/passwd.wav", "a b.wav", "x.WAV", "x.wav!y.wav",
                                                       "{api_on_answer=hupall}x.wav"]), json_values),
    "tone": st.one_of(nasty(tones), st.sampled_from(["1,2,3,4", "1,2", "123456,1,1", "1,2,3);loops=-1"]),
                      json_values),
    "loops": st.one_of(st.integers(-5, 200), json_values, st.just("2"), st.just(2.0)),
    "digits": st.one_of(nasty(digit_strings), st.sampled_from(["1@9999", "abcd", "1 2", "1" * 33]), json_values),
    "action": st.one_of(nasty(st.sampled_from(["start", "stop"])), json_values),
}


@pytest.fixture(scope="module")
def media_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Rig, Media]]:
    """The media test's own rig and media commands: acme's answered and ringing calls, globex's."""
    with _new_rig(tmp_path_factory.mktemp("media")) as built:
        built.place(TENANT, LIVE_CALL, answered=True)
        built.place(TENANT, RINGING_CALL, answered=False)
        built.place(OTHER_TENANT, OTHER_TENANT_CALL, answered=True)
        media = Media(journal=built.journal, service=built.service, engine=built.service._engine, node="fs1",
                      sounds_dir=SOUNDS_DIR, recordings_dir=RECORDINGS_DIR)
        yield built, media


def _media_fields(command_type: str, values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The command's fields, and whether the contract must accept them (CONTRACT section 3)."""
    names_of = {"play": ("sound", "tone", "loops"), "dtmf": ("digits",), "record": ("action",)}[command_type]
    fields = {"call_id": values["call_id"]}
    fields.update({name: values[name] for name in names_of if values[name] is not MISSING})
    ok = fits(UUID_ANY_CASE, values["call_id"])
    if command_type == "play":
        sound, tone, loops = fields.get("sound"), fields.get("tone"), fields.get("loops", 1)
        ok = ok and (sound is None) != (tone is None) and (sound is None or fits(SOUND, sound)) \
            and (tone is None or fits(TONE, tone)) and type(loops) is int and 1 <= loops <= 100
    elif command_type == "dtmf":
        ok = ok and fits(DIGITS, fields["digits"])
    else:
        ok = ok and fields["action"] in ("start", "stop")
    return fields, ok


def _media_line(command_type: str, fields: dict[str, Any], target: str) -> str:
    """What an accepted command must send, as a pattern."""
    if command_type == "dtmf":
        return re.escape(f"api uuid_send_dtmf {target} {fields['digits']}")
    if command_type == "record":
        return (rf"api uuid_record {target} {fields['action']} {re.escape(RECORDINGS_DIR)}/{TENANT}/{target}/"
                rf"{UUID_LOWER}\.wav")
    loops = fields.get("loops", 1)
    if "tone" in fields:
        source = f"tone_stream://%({fields['tone']});loops={loops}"
    else:
        path = f"{SOUNDS_DIR}/{fields['sound']}"
        source = path if loops == 1 else "file_string://" + "!".join([path] * loops)
    return rf"api uuid_broadcast {target} \{{callworker_playback_id={UUID_LOWER}\}}{re.escape(source)} aleg"


@FUZZ
@given(command_type=st.sampled_from(["play", "dtmf", "record"]), values=some_wild(MEDIA_VALID, MEDIA_WILD))
def test_play_dtmf_and_record_send_one_clean_command_or_nothing(
    media_rig: tuple[Rig, Media], command_type: str, values: dict[str, Any]
) -> None:
    rig, media = media_rig
    fields, ok = _media_fields(command_type, values)
    handler = media.handlers()[command_type]
    outcome, sent = rig.new_sends(lambda: handler(_decode(TENANT, command_type, fields), Delivered(None, None)))
    event(f"{command_type} {'accepted' if ok else 'refused'}")
    if not ok:
        _assert_refused(outcome, sent)
        assert outcome.code is ErrorCode.VALIDATION_ERROR  # a bad value, dead-lettered
        return
    assert not isinstance(outcome, ContractError), (outcome, fields)
    target = fields["call_id"].lower()
    refusal = _refusal(rig, TENANT, "hold", target)  # media needs an answered call of one's own
    if refusal is not None:
        assert not outcome["ok"] and outcome["error"]["code"] == refusal, outcome
        assert sent == []
        return
    if not outcome["ok"]:  # record stop with no recording running
        assert (command_type, fields["action"], outcome["error"]["code"]) == ("record", "stop", "CALL_NOT_ACTIVE")
        assert sent == []
        return
    assert len(sent) <= 1 and (sent or command_type == "record")
    for payload in sent:
        line, headers = split_frame(payload)
        assert headers == {}
        assert re.fullmatch(_media_line(command_type, fields, target), line), line


@FUZZ
@given(
    call_id=st.one_of(uuids, nasty(uuids), json_values),
    value=st.one_of(sounds, tones, digit_strings, nasty(st.one_of(sounds, tones, digit_strings)), json_values),
    loops=st.one_of(st.integers(-2, 102), json_values),
)
def test_media_builders_refuse_or_build_one_clean_command(call_id: Any, value: Any, loops: Any) -> None:
    id_ok = fits(UUID_LOWER, call_id)
    loops_ok = type(loops) is int and 1 <= loops <= 100
    path = f"{SOUNDS_DIR}/{value}"
    cases: list[tuple[Callable[[], str], bool, str]] = [
        (lambda: builders.tone_source(value, loops), fits(TONE, value) and loops_ok,
         f"tone_stream://%({value});loops={loops}"),
        (lambda: builders.sound_source(SOUNDS_DIR, value, loops), fits(SOUND, value) and loops_ok,
         path if loops == 1 else "file_string://" + "!".join([path] * (loops if loops_ok else 0))),
        (lambda: builders.uuid_send_dtmf(call_id, value), id_ok and fits(DIGITS, value),
         f"uuid_send_dtmf {call_id} {value}"),
        (lambda: builders.recording_path(RECORDINGS_DIR, TENANT, call_id, call_id), id_ok,
         f"{RECORDINGS_DIR}/{TENANT}/{call_id}/{call_id}.wav"),
        (lambda: builders.uuid_broadcast_play(call_id, call_id, f"tone_stream://%({value});loops=1"),
         id_ok and fits(TONE, value),
         f"uuid_broadcast {call_id} {{callworker_playback_id={call_id}}}tone_stream://%({value});loops=1 aleg"),
        (lambda: builders.uuid_record(call_id, "start", f"{RECORDINGS_DIR}/{value}/{call_id}/{call_id}.wav"),
         id_ok and fits(TENANT_NAME, str(value)),
         f"uuid_record {call_id} start {RECORDINGS_DIR}/{value}/{call_id}/{call_id}.wav"),
    ]
    for build, ok, expected in cases:
        try:
            line = build()
        except UnsafeValue:
            assert not ok
            continue
        assert ok and line == expected, (line, expected)
        split_frame(encode_command(f"api {line}"))


# ------------------------------------------------------------------ the builders


def _builder_originate_ok(args: dict[str, Any]) -> bool:
    timeout = args["timeout_s"]
    optional = {"caller_id_number": PHONE, "caller_id_name": NAME}
    variables = args.get("variables") or {}
    return (
        fits(UUID_LOWER, args["call_id"])
        and fits(PHONE, args["destination_number"])
        and fits(GATEWAY_NAME, args["gateway"])
        and type(timeout) is int and 1 <= timeout <= 600
        and all(args.get(k) is None or fits(p, args.get(k)) for k, p in optional.items())
        and all(isinstance(n, str) and EXTRA_VARIABLE.fullmatch(n) for n in variables)
        and all(fits(EXTRA_VALUE, v) for v in variables.values())
    )


variable_names = st.one_of(
    st.from_regex(r"callworker_[a-z0-9_]{1,20}", fullmatch=True), st.just("ignore_early_media"),
    st.sampled_from(["api_on_answer", "execute_on_answer", "api_hangup_hook", "exec_after_bridge_app",
                     "transfer_after_bridge", "origination_uuid", "originate_timeout",
                     "effective_caller_id_number", "Callworker_x", "callworker_x,y"]),
    spliced(st.just("callworker_tenant")), st.text(max_size=20),
)
variable_values = nasty(st.from_regex(EXTRA_VALUE, fullmatch=True))


BUILDER_VALID: dict[str, st.SearchStrategy[Any]] = {
    "call_id": uuids,
    "destination_number": phones,
    "gateway": st.from_regex(GATEWAY_NAME, fullmatch=True),
    "timeout_s": st.integers(1, 600),
    "caller_id_number": st.one_of(st.none(), phones),
    "caller_id_name": st.one_of(st.none(), names),
    "privacy": st.booleans(),
    "variables": st.one_of(st.none(), st.dictionaries(
        st.from_regex(r"callworker_[a-z0-9_]{1,20}", fullmatch=True),
        st.from_regex(EXTRA_VALUE, fullmatch=True), max_size=3)),
}
BUILDER_WILD: dict[str, st.SearchStrategy[Any]] = {
    "call_id": st.one_of(nasty(uuids), uuids.map(str.upper), json_values),
    "destination_number": st.one_of(nasty(phones), st.integers(0, 10**15)),
    "gateway": st.one_of(nasty(st.from_regex(GATEWAY_NAME, fullmatch=True)), json_values),
    "timeout_s": st.one_of(st.integers(-5, 700), st.booleans(), json_values),
    "caller_id_number": st.one_of(nasty(phones), json_values),
    "caller_id_name": st.one_of(nasty(names), json_values),
    "privacy": json_values,
    "variables": st.dictionaries(variable_names, variable_values, min_size=1, max_size=3),
}


@FUZZ
@given(args=some_wild(BUILDER_VALID, BUILDER_WILD))
def test_originate_builder_refuses_or_builds_one_clean_dial_string(args: dict[str, Any]) -> None:
    expected_ok = _builder_originate_ok(args)
    event("accepted" if expected_ok else "refused")
    try:
        line = builders.originate(**args)
    except UnsafeValue:
        assert not expected_ok, args
        return
    assert expected_ok, (args, line)
    encode_command(f"bgapi {line}")  # one line: the codec would refuse anything else
    variables, gateway, number = parse_originate(line, extra_names=True)
    assert (variables["origination_uuid"], gateway, number) == (
        args["call_id"], args["gateway"], args["destination_number"]
    )
    for name, value in (args["variables"] or {}).items():
        assert variables[name] == value


@FUZZ
@given(
    call_id=st.one_of(uuids, nasty(uuids), uuids.map(str.upper), json_values),
    cause=st.one_of(st.sampled_from(sorted(HANGUP_CAUSES)), nasty(st.sampled_from(sorted(HANGUP_CAUSES))), json_values),
    flag=st.booleans(),
)
def test_call_builders_refuse_or_build_one_clean_command(call_id: Any, cause: Any, flag: bool) -> None:
    id_ok = fits(UUID_LOWER, call_id)
    cause_ok = fits(r"[A-Z][A-Z0-9_]{1,63}", cause)
    cases: list[tuple[Callable[[], str], bool, str]] = [
        (lambda: builders.uuid_kill(call_id, cause), id_ok and cause_ok, f"uuid_kill {call_id} {cause}"),
        (lambda: builders.uuid_hold(call_id, flag), id_ok,
         f"uuid_hold {call_id}" if flag else f"uuid_hold off {call_id}"),
        (lambda: builders.uuid_audio_mute(call_id, flag), id_ok, f"uuid_audio {call_id} start read mute {int(flag)}"),
        (lambda: builders.uuid_exists(call_id), id_ok, f"uuid_exists {call_id}"),
    ]
    for build, ok, expected in cases:
        try:
            line = build()
        except UnsafeValue:
            assert not ok
            continue
        assert ok and line == expected
        split_frame(encode_command(f"api {line}"))


@pytest.mark.parametrize(
    "name", ["api_on_answer", "execute_on_answer", "api_hangup_hook", "exec_after_bridge_app",
             "transfer_after_bridge", "session_in_hangup_hook", "effective_caller_id_number"],
)
def test_freeswitch_variables_that_run_commands_cannot_be_set(name: str) -> None:
    # A value of one safe word is still a command when FreeSWITCH runs it on answer.
    with pytest.raises(UnsafeValue):
        builders.originate(call_id=LIVE_CALL, destination_number="15551230001", gateway="default",
                           timeout_s=30, variables={name: "hupall"})


# ------------------------------------------------------------ end to end


def _attacks(call_id: str) -> list[tuple[str, dict[str, Any]]]:
    base = {"destination_number": "+15551230002"}
    return [
        ("originate", {"destination_number": "+15551230001\napi hupall"}),
        ("originate", {"destination_number": "+15551230001\r\n\r\napi hupall MANAGER_REQUEST\r\n\r\n"}),
        ("originate", {"destination_number": "15551230001 &bridge(user/1000)"}),
        ("originate", {"destination_number": "{api_on_answer=hupall}15551230001"}),
        ("originate", {"destination_number": "15551230001,sofia/gateway/default/15559990000"}),
        ("originate", {"destination_number": "15551230001|loopback/9999"}),
        ("originate", {"destination_number": "\uff11\uff15\uff15\uff15\uff11\uff12\uff13"}),
        ("originate", {**base, "caller_id_name": "x',api_on_answer=hupall,x='"}),
        ("originate", {**base, "caller_id_name": "Bob}sofia/gateway/default/15559990000 &park()\n\nbgapi originate {"}),
        ("originate", {**base, "caller_id_number": "+1555\n\nexit"}),
        ("originate", {**base, "gateway": "default/15559990000,sofia/gateway/evil"}),
        ("originate", {**base, "gateway": "default\n\napi hupall"}),
        ("originate", {**base, "call_id": f"{uuid.uuid4()}\n\napi hupall"}),
        ("originate", {**base, "call_id": f"{uuid.uuid4()},origination_uuid={uuid.uuid4()}"}),
        ("originate", {**base, "timeout_s": "30\n\napi hupall"}),
        ("originate", {**base, "timeout_s": True}),
        ("hangup", {"call_id": f"{call_id}\n\napi hupall"}),
        ("hangup", {"call_id": call_id, "cause": "NORMAL_CLEARING\n\napi hupall"}),
        ("hangup", {"call_id": call_id, "cause": "NORMAL_CLEARING hupall"}),
        ("hold", {"call_id": f"{call_id} \n\napi hupall"}),
        ("hold", {"call_id": call_id, "hold": "off\n\napi hupall"}),
        ("mute", {"call_id": f"{call_id}\r\n\r\napi hupall"}),
        ("mute", {"call_id": call_id, "muted": "1\n\napi hupall"}),
        ("play", {"call_id": call_id, "sound": "../../../etc/passwd.wav"}),
        ("play", {"call_id": call_id, "sound": "x.wav\n\napi hupall"}),
        ("play", {"call_id": call_id, "sound": "{api_on_answer=hupall}x.wav"}),
        ("play", {"call_id": call_id, "tone": "100,100,440);loops=-1 both\n\napi hupall"}),
        ("play", {"call_id": call_id, "tone": "100,100,440", "sound": "x.wav"}),
        ("play", {"call_id": call_id, "tone": "100,100,440", "loops": "1 both"}),
        ("dtmf", {"call_id": call_id, "digits": "123\n\napi hupall"}),
        ("dtmf", {"call_id": call_id, "digits": "1@100000"}),
        ("record", {"call_id": call_id, "action": "start /etc/passwd"}),
    ]


def _smuggle_tenant(probe: Probe, tenant: str, live: str) -> None:
    """A tenant in the body is ignored (the hangup is the caller's own); one in the key is refused."""
    smuggled: dict[str, Any] = {"v": 1, "command_id": str(uuid.uuid4()), "type": "hangup", "call_id": live,
                                "tenant": f"{tenant}\n\napi hupall"}
    probe.publish_raw(f"{tenant}.hangup", json.dumps(smuggled).encode())
    assert probe.reply_for(smuggled["command_id"])["ok"]
    body = json.dumps({"v": 1, "command_id": str(uuid.uuid4()), "type": "originate",
                       "destination_number": "+15551230001"}).encode()
    correlation = probe.publish_raw(f"{tenant}\n\napi hupall.originate", body)
    assert probe.reply_for(None, correlation_id=correlation)["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.integration
def test_nastiest_payloads_through_the_broker_never_reach_freeswitch(
    worker: Worker, probe: Probe, tenant: str, simulator: Simulator, amqp_url: str
) -> None:
    dead_letters(amqp_url)
    live = str(uuid.uuid4())
    first = probe.send(tenant, "originate", destination_number="+15551230001", call_id=live)
    assert probe.reply_for(first["command_id"])["ok"]
    probe.event(lambda e: e.get("call_id") == live and e["type"] == "call.answered")
    before = len(simulator.received_commands())

    attacks = _attacks(live)
    for command_type, fields in attacks:
        sent = probe.send(tenant, command_type, **fields)
        reply = probe.reply_for(sent["command_id"])
        assert reply["ok"] is False and reply["error"]["code"] in ("VALIDATION_ERROR", "INVALID_PHONE_NUMBER"), reply
    _smuggle_tenant(probe, tenant, live)

    after = str(uuid.uuid4())
    sent = probe.send(tenant, "originate", destination_number="+15551230200", call_id=after,
                      caller_id_name="Robert Tables")
    assert probe.reply_for(sent["command_id"])["ok"]
    probe.call_events_until_terminal(after)
    probe.call_events_until_terminal(live)

    received = simulator.received_commands()[before:]
    assert not any("hupall" in line or "exit" in line or "bridge" in line for line in received), received
    originates = [line for line in received if line.startswith("bgapi originate")]
    assert len(originates) == 1
    variables, _, number = parse_originate(originates[0][len("bgapi "):])
    assert variables["origination_uuid"] == after and number == "+15551230200"
    assert variables["origination_caller_id_name"] == "'Robert Tables'"
    assert [line for line in received if not line.startswith("bgapi originate")] == [
        f"api uuid_kill {live} NORMAL_CLEARING"
    ]
    assert len(dead_letters(amqp_url)) == len(attacks) + 1
