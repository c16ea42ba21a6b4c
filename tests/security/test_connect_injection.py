"""The ``connect`` fields (originate and transfer) never reach the event socket unchecked.

The same strategy as test_esl_injection.py, for what a call is connected to: hypothesis
throws arbitrary text and curated attacks at the extension, the context and every field
of a second call (number, caller ID, gateway, ring timeout, call id), and at
``max_duration_s``, through ``decode_command`` -> ``CallService`` with its ``Connector``
-> the journal on SQLite -> a port that encodes each command as it is written to the
socket. Accepted: exactly the commands the builders mean, each value unchanged. Refused:
a dead-lettering contract error, and nothing written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gevent.queue import Queue
from hypothesis import event, given
from hypothesis import strategies as st

from callworker.calls.connect import Connector
from callworker.calls.fsevents import EventPump
from callworker.calls.journal import Journal
from callworker.calls.service import CallService, Delivered
from callworker.contract import ContractError
from callworker.errors import UnsafeValue
from callworker.esl import builders
from callworker.esl.codec import Event
from callworker.store import make_engine, migrate
from tests.security.eslgrammar import (
    CONTEXT,
    EXTENSION,
    MISSING,
    NAME,
    PHONE,
    UUID_ANY_CASE,
    fits,
    json_values,
    names,
    nasty,
    originate_target,
    parse_originate,
    phones,
    some_wild,
    split_frame,
    uuids_any_case,
)
from tests.security.test_esl_injection import (
    FUZZ,
    GATEWAYS,
    TENANT,
    Placed,
    RecordingPort,
    Rig,
    _assert_refused,
    _decode,
)

CONTEXTS = ("default", "ivr")
LIVE = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"  # acme's answered call, for transfers


def _answer(journal: Journal, call_id: str) -> None:
    EventPump(Queue(), journal).handle(
        Event({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": call_id, "Event-Date-Timestamp": "1700000000000000"},
              None, encoded=False))
    # Runs after the answer's batch; the hub runs the second call's dial meanwhile.
    journal.run(lambda unit: None)
    journal.run(lambda unit: None)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    path: Path = tmp_path_factory.mktemp("connect")
    url = f"sqlite:///{path / 'calls.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    journal = Journal(engine, node="fs1", notify=lambda items: None)
    journal.start()
    port = RecordingPort()
    connector = Connector(journal=journal, port=port, engine=engine, node="fs1", gateways=GATEWAYS,
                          default_gateway="default", contexts=CONTEXTS, max_duration_s=14400)
    journal.observers.append(connector.on_call_event)
    service = CallService(journal=journal, port=port, engine=engine, node="fs1", gateways=GATEWAYS,
                          default_gateway="default", connector=connector)
    built = Rig(service, journal, port)
    service.execute(_decode(TENANT, "originate", {"destination_number": "+15551230001", "call_id": LIVE}),
                    Delivered(None, None))
    _answer(journal, LIVE)
    try:
        yield built
    finally:
        journal.stop()
        engine.dispose()


extensions = st.from_regex(EXTENSION, fullmatch=True)
contexts = st.sampled_from(CONTEXTS)
CONNECT_VALID: dict[str, st.SearchStrategy[Any]] = {
    "to": st.sampled_from(["number", "extension"]),
    "extension": extensions,
    "context": st.one_of(st.just(MISSING), contexts),
    "destination_number": phones,
    "caller_id_number": st.one_of(st.just(MISSING), phones),
    "caller_id_name": st.one_of(st.just(MISSING), names),
    "gateway": st.one_of(st.just(MISSING), st.sampled_from(GATEWAYS)),
    "timeout_s": st.one_of(st.just(MISSING), st.integers(5, 120)),
    "call_id": st.one_of(st.just(MISSING), st.uuids().map(str)),
    "max_duration_s": st.one_of(st.just(MISSING), st.integers(1, 86400)),
}
CONNECT_WILD: dict[str, st.SearchStrategy[Any]] = {
    "to": st.one_of(st.sampled_from(["park", "bridge", "NUMBER", ""]), json_values),
    "extension": st.one_of(nasty(extensions), json_values),
    # A context that exists in FreeSWITCH but is not configured is refused like any other.
    "context": st.one_of(nasty(contexts), st.sampled_from(["public", "carrier", "Default"]), json_values),
    "destination_number": st.one_of(nasty(phones), json_values),
    "caller_id_number": st.one_of(nasty(phones), json_values),
    "caller_id_name": st.one_of(nasty(names), json_values),
    "gateway": st.one_of(nasty(st.sampled_from(GATEWAYS)), json_values),
    "timeout_s": st.one_of(st.integers(-5, 200), json_values, st.just("30")),
    "call_id": st.one_of(nasty(uuids_any_case), json_values, st.just(LIVE)),
    "max_duration_s": st.one_of(st.integers(-5, 100000), json_values, st.just("60"), st.just(2.0)),
}
NUMBER_FIELDS = ("destination_number", "caller_id_number", "caller_id_name", "gateway", "timeout_s", "call_id")
EXTENSION_FIELDS = ("extension", "context")


def _connect(values: dict[str, Any]) -> dict[str, Any]:
    kind = values["to"]
    names_ = NUMBER_FIELDS if kind == "number" else EXTENSION_FIELDS if kind == "extension" else ()
    connect = {"to": kind, **{n: values[n] for n in names_ if values[n] is not MISSING}}
    return connect


def _connect_ok(connect: dict[str, Any], used: set[str], *, park: bool = False) -> bool:
    """Whether the contract (and the configured contexts and gateways) must accept it."""
    def optional(name: str, check: Any) -> bool:
        return connect.get(name) is None or check(connect[name])

    if connect["to"] == "extension":
        return fits(EXTENSION, connect.get("extension")) and optional(
            "context", lambda v: isinstance(v, str) and v in CONTEXTS)
    if connect["to"] == "park":
        return park  # originate's default; not something a transfer does
    if connect["to"] != "number":
        return False
    timeout = connect.get("timeout_s", 30)
    return (
        fits(PHONE, connect.get("destination_number"))
        and optional("caller_id_number", lambda v: fits(PHONE, v))
        and optional("caller_id_name", lambda v: fits(NAME, v))
        and optional("gateway", lambda v: isinstance(v, str) and v in GATEWAYS)
        and type(timeout) is int and 5 <= timeout <= 120
        # A client's call id must be free (LIVE, and every call placed so far, are taken).
        and optional("call_id", lambda v: fits(UUID_ANY_CASE, v) and v.lower() not in used)
    )


def _check_second_call(line: str, connect: dict[str, Any], second: str, tenant: str) -> None:
    variables, gateway, number = parse_originate(line)
    assert originate_target(line) is None  # the second call is parked, then bridged
    assert variables["origination_uuid"] == second and number == connect["destination_number"]
    assert gateway == (connect.get("gateway") or "default")
    assert variables["originate_timeout"] == str(connect.get("timeout_s", 30))
    assert variables.get("origination_caller_id_number") == connect.get("caller_id_number")
    name = connect.get("caller_id_name")
    assert variables.get("origination_caller_id_name") == (f"'{name}'" if name else None)
    assert variables["callworker_tenant"] == tenant


@FUZZ
@given(values=some_wild(CONNECT_VALID, CONNECT_WILD))
def test_originate_connect_sends_clean_commands_or_nothing(rig: Rig, values: dict[str, Any]) -> None:
    connect = _connect(values)
    fields: dict[str, Any] = {"destination_number": "+15551230001", "connect": connect}
    max_duration = values["max_duration_s"]
    if max_duration is not MISSING:
        fields["max_duration_s"] = max_duration
    ok = _connect_ok(connect, {LIVE, *rig.calls}, park=True) and (
        max_duration is MISSING or max_duration is None or (type(max_duration) is int and 1 <= max_duration <= 86400))
    outcome, sent = rig.new_sends(
        lambda: rig.service.execute(_decode(TENANT, "originate", fields), Delivered(None, None)))
    event("accepted" if ok else "refused")
    if not ok:
        _assert_refused(outcome, sent)
        return
    assert not isinstance(outcome, ContractError), (outcome, fields)
    call_id = outcome["result"]["call_id"]
    rig.calls[call_id] = Placed(TENANT, answered=False)
    assert len(sent) == 1
    line, _ = split_frame(sent[0])
    variables, _, number = parse_originate(line[len("bgapi "):])
    assert variables["origination_uuid"] == call_id and number == "+15551230001"
    seconds = max_duration if max_duration not in (MISSING, None) else 14400
    assert variables["execute_on_answer"] == f"'sched_hangup +{seconds} ALLOTTED_TIMEOUT'"
    target = originate_target(line[len("bgapi "):])
    if connect["to"] == "park":
        assert target is None and "connect_call_id" not in outcome["result"]
        return
    if connect["to"] == "extension":
        assert target == (connect["extension"], connect.get("context") or "default")
        return
    assert target is None
    second = outcome["result"]["connect_call_id"]
    rig.calls[second] = Placed(TENANT, answered=False)
    if connect.get("call_id") is not None:
        assert second == connect["call_id"].lower()
    # The second call is placed once the first is answered, with the values unchanged.
    _, later = rig.new_sends(lambda: _answer(rig.journal, call_id))
    assert len(later) == 1
    line, headers = split_frame(later[0])
    assert headers == {"Job-UUID": second}
    _check_second_call(line[len("bgapi "):], connect, second, TENANT)


@FUZZ
@given(values=some_wild(CONNECT_VALID, CONNECT_WILD))
def test_transfer_sends_clean_commands_or_nothing(rig: Rig, values: dict[str, Any]) -> None:
    connect = _connect(values)
    ok = _connect_ok(connect, {LIVE, *rig.calls})
    outcome, sent = rig.new_sends(lambda: _transfer(rig, connect))
    event("accepted" if ok else "refused")
    if not ok:
        _assert_refused(outcome, sent)
        return
    assert not isinstance(outcome, ContractError), (outcome, connect)
    assert len(sent) == 1
    line, headers = split_frame(sent[0])
    if connect["to"] == "extension":
        assert line == f"api uuid_transfer {LIVE} {connect['extension']} XML {connect.get('context') or 'default'}"
        return
    second = outcome["result"]["connect_call_id"]
    rig.calls[second] = Placed(TENANT, answered=False)
    assert headers == {"Job-UUID": second}
    _check_second_call(line[len("bgapi "):], connect, second, TENANT)


def _transfer(rig: Rig, connect: dict[str, Any]) -> Any:
    reply = rig.service.execute(_decode(TENANT, "transfer", {"call_id": LIVE, "connect": connect}),
                                Delivered(None, None))
    rig.journal.run(lambda unit: None)  # the hub runs the second call's dial meanwhile
    return reply


@FUZZ
@given(
    call_id=st.one_of(st.just(LIVE), nasty(st.just(LIVE))),
    extension=st.one_of(extensions, nasty(extensions)),
    context=st.one_of(contexts, st.from_regex(CONTEXT, fullmatch=True), nasty(contexts)),
    other=st.one_of(st.just(str(uuid.uuid4())), nasty(uuids_any_case)),
)
def test_connect_builders_refuse_or_build_one_clean_command(
    call_id: str, extension: str, context: str, other: str,
) -> None:
    ok_ids = fits(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", call_id)
    ok_other = fits(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", other)
    ok_target = fits(EXTENSION, extension) and fits(CONTEXT, context)
    cases = [
        (lambda: builders.uuid_transfer(call_id, extension, context), ok_ids and ok_target,
         f"uuid_transfer {call_id} {extension} XML {context}"),
        (lambda: builders.uuid_bridge(call_id, other), ok_ids and ok_other, f"uuid_bridge {call_id} {other}"),
    ]
    for build, ok, expected in cases:
        if ok:
            assert build() == expected
        else:
            with pytest.raises(UnsafeValue):
                build()
