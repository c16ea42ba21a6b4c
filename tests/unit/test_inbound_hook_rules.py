"""What the worker takes from a handed-over call's channel data and from hook events,
and how hooks are subscribed: pure rules, over capture 15 and simulator-built events."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callworker.calls.fsevents import SUBSCRIBED_EVENTS
from callworker.calls.hooks import hook_data, hook_name, hook_subscription
from callworker.calls.inbound import (
    InboundCalls,
    clean_name,
    clean_number,
    read_inbound,
    tenant_of,
)
from callworker.esl.codec import Event, FrameParser, parse_event_json, parse_event_plain
from callworker.simulator.events import SimEvent
from callworker.simulator.inbound import new_inbound_channel
from callworker.simulator.subscription import Subscription
from callworker.simulator.switch import Switch, Timing

UUID = "6f0c0a52-1d4e-4b8a-9c1f-000000000001"


def capture_15_channel(captures_dir: Path) -> Event:
    parser = FrameParser()
    parser.feed(next(captures_dir.glob("15_*")).read_bytes())
    frame = parser.next_frame()
    assert frame is not None
    return Event(dict(frame.headers), None, encoded=False)


def channel(**headers: str) -> Event:
    values = {"Unique-ID": UUID, "Answer-State": "ringing", **headers}
    return Event({k: v for k, v in values.items() if v is not None}, None, encoded=False)


# ------------------------------------------------------------------ inbound calls


def test_capture_15_reads_as_an_inbound_call_of_the_default_tenant(captures_dir: Path) -> None:
    facts = read_inbound(capture_15_channel(captures_dir))
    assert facts.call_id == "78b86350-4fb8-4d2b-a629-1eeafd7d2f74"
    assert facts.tenant == "default"
    assert (facts.destination_number, facts.caller_id_number) == ("3", "1001")
    assert facts.caller_id_name == "Dan X-Lite"
    assert facts.answer_state == "ringing" and facts.answered_at is None
    assert facts.created_at == datetime.fromtimestamp(1420557157.855728, tz=UTC)
    assert facts.reached_at == datetime.fromtimestamp(1420557157.955591, tz=UTC)


def test_tenant_comes_from_the_variable_and_a_bad_one_refuses() -> None:
    assert tenant_of(None) == "default" and tenant_of("  ") == "default"
    assert tenant_of("acme") == "acme" and tenant_of(" acme ") == "acme"
    for bad in ("ACME", "a b", "-acme", "x" * 64, "acme.corp", "ä"):
        with pytest.raises(ValueError, match="callworker_tenant"):
            tenant_of(bad)
    assert read_inbound(channel(variable_callworker_tenant="t-1")).tenant == "t-1"
    with pytest.raises(ValueError):
        read_inbound(channel(variable_callworker_tenant="Nope!"))


@pytest.mark.parametrize("headers", [
    {"Unique-ID": "not-a-uuid"}, {"Unique-ID": UUID.upper()}, {"Unique-ID": None},
    {"Answer-State": "hangup"},
])
def test_calls_without_a_usable_channel_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        read_inbound(channel(**headers))


def test_answer_state_sets_where_the_call_starts() -> None:
    answered = read_inbound(channel(**{"Answer-State": "answered",
                                       "Caller-Channel-Answered-Time": "1700000000000000",
                                       "Event-Date-Timestamp": "1700000001000000"}))
    assert answered.answer_state == "answered"
    assert answered.answered_at == datetime.fromtimestamp(1700000000, tz=UTC)
    assert read_inbound(channel(**{"Answer-State": "early"})).answer_state == "early"
    assert read_inbound(channel(**{"Answer-State": "odd"})).answer_state == "ringing"


def _name_by_the_rules(value: str | None) -> str | None:
    """clean_name's rules spelled out plainly: other and separator characters become
    spaces, runs of spaces one, at most 64 characters, trimmed."""
    text = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in value or "")
    return " ".join(text.split())[:64].strip() or None


@given(st.one_of(st.none(), st.text(max_size=80), st.text(alphabet=" !~azAZ09\t\x7f\xa0é", max_size=80)))
def test_a_caller_id_name_is_cleaned_by_the_rules_whatever_it_holds(value: str | None) -> None:
    assert clean_name(value) == _name_by_the_rules(value)


def test_numbers_and_names_from_the_network_are_trimmed_or_dropped() -> None:
    assert clean_number(" +15551234567 ") == "+15551234567"
    assert clean_number("anonymous") == "anonymous" and clean_number("*67#") == "*67#"
    for bad in (None, "", "1" * 33, "12 34", "<sip:1@x>", "1;x=y"):
        assert clean_number(bad) is None
    assert clean_name("Dan\x00X-Lite") == "Dan X-Lite"
    assert clean_name("  Jane \t\n Caller ") == "Jane Caller"
    assert clean_name("Zoë Ōta") == "Zoë Ōta"
    assert clean_name("n" * 100) == "n" * 64
    assert clean_name("\r\n") is None and clean_name(None) is None
    assert clean_name("a" * 64) == "a" * 64 and clean_name("Jane  Caller") == "Jane Caller"
    facts = read_inbound(channel(**{"Caller-Caller-ID-Number": "x" * 40,
                                    "Caller-Destination-Number": "+15552001234"}))
    assert (facts.caller_id_number, facts.destination_number) == (None, "+15552001234")


class NoJournal:
    """Stands for a journal that must not be used."""

    def __init__(self, healthy: bool) -> None:
        self.healthy = healthy

    def run(self, op: Any) -> Any:
        raise AssertionError("the call must not be opened")

    def knows(self, call_id: str | None) -> bool:
        return False


@pytest.mark.parametrize(("connected", "healthy"), [(False, True), (True, False)])
def test_calls_are_refused_while_freeswitch_events_or_the_database_are_away(
    connected: bool, healthy: bool
) -> None:
    inbound = InboundCalls(journal=NoJournal(healthy), node="n1",  # type: ignore[arg-type]
                           port=SimpleNamespace(connected=connected))  # type: ignore[arg-type]
    session = SimpleNamespace(uuid=UUID, channel=channel())
    assert inbound.on_session(session) is False  # type: ignore[arg-type]


def test_a_bad_tenant_refuses_before_anything_is_written() -> None:
    inbound = InboundCalls(journal=NoJournal(True), node="n1")  # type: ignore[arg-type]
    session = SimpleNamespace(uuid=UUID, channel=channel(variable_callworker_tenant="Bad Tenant"))
    assert inbound.on_session(session) is False  # type: ignore[arg-type]


# --------------------------------------------------------------------------- hooks


class Collector:
    def __init__(self) -> None:
        self.events: list[SimEvent] = []

    def wants(self, name: str, subclass: str | None, variable: Callable[[str], str | None] | None = None) -> bool:
        return True

    def deliver(self, event: SimEvent) -> None:
        self.events.append(event)


def hook_event(subclass: str, headers: dict[str, str]) -> SimEvent:
    """A CUSTOM event as the dialplan ``event`` app fires it, on an inbound channel."""
    sw = Switch("sim1", "127.0.0.1", Timing(0, 0, 0))
    collector = Collector()
    sw.listeners.append(collector)
    ch = new_inbound_channel(sw, caller_id_number="+15550001111",
                             destination_number="+15552001234", caller_id_name=None)
    ch.variables.set("callworker_tenant", "acme")
    sw.add_channel(ch)
    sw.emit(ch, "CUSTOM", subclass=subclass, top=list(headers.items()), renamed=True)
    return collector.events[-1]


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_hook_data_is_the_headers_the_dialplan_set(fmt: str) -> None:
    sim_event = hook_event("callworker::survey_done",
                           {"survey_score": "5", "note": "a b&c%", "Survey.Id": "s-1"})
    payload = sim_event.payload(fmt)
    event = parse_event_plain(payload) if fmt == "plain" else parse_event_json(payload)
    assert len(event.names()) > 60  # channel data, profile and variables came too
    assert hook_name(event) == "survey_done"
    assert hook_data(event) == {"survey_score": "5", "note": "a b&c%", "Survey.Id": "s-1"}


def test_the_event_app_shape_common_headers_then_name_and_subclass() -> None:
    names = [name for name, _ in hook_event("callworker::x", {"a": "1"}).pairs()]
    assert names[0] == "Core-UUID" and names[11] == "Event-Sequence"
    assert names[12:15] == ["Event-Name", "Event-Subclass", "a"]
    assert "Unique-ID" in names and "variable_callworker_tenant" in names


def test_hook_data_drops_bad_names_long_values_and_the_excess() -> None:
    headers = {"ok": "1", "bad name": "2", "long": "v" * 2049, "fits": "v" * 2048}
    headers.update({f"h{n:03d}": str(n) for n in range(100)})
    data = hook_data(parse_event_plain(hook_event("callworker::x", headers).payload("plain")))
    assert data["ok"] == "1" and data["fits"] == "v" * 2048
    assert "bad name" not in data and "long" not in data
    assert len(data) == 64


def test_hook_name_only_for_callworker_custom_events() -> None:
    assert hook_name(parse_event_plain(hook_event("sofia::register", {}).payload("plain"))) is None
    assert hook_name(channel(**{"Event-Name": "CHANNEL_ANSWER"})) is None
    assert hook_name(channel(**{"Event-Name": "CUSTOM", "Event-Subclass": "callworker::"})) == ""


def test_the_event_app_without_event_name_is_a_hook_too() -> None:
    """Without Event-Name=CUSTOM the event application fires CHANNEL_APPLICATION."""
    fired = channel(**{"Event-Name": "CHANNEL_APPLICATION", "Event-Subclass": "callworker::menu_choice",
                       "digit": "2"})
    assert hook_name(fired) == "menu_choice" and hook_data(fired) == {"digit": "2"}
    assert hook_name(channel(**{"Event-Name": "CHANNEL_APPLICATION"})) is None
    assert hook_name(channel(**{"Event-Name": "CHANNEL_APPLICATION", "Event-Subclass": "other::x"})) is None


# ---------------------------------------------------------------------- subscribing


def test_custom_alone_does_not_deliver_subclassed_events_like_mod_event_socket() -> None:
    sub = Subscription()
    sub.add(["CHANNEL_ANSWER", "CUSTOM"])
    assert not sub.wants("CUSTOM", "callworker::survey_done")
    assert sub.wants("CUSTOM", None)
    sub.add(["CUSTOM", "callworker::survey_done"])
    assert sub.wants("CUSTOM", "callworker::survey_done")
    assert not sub.wants("CUSTOM", "callworker::other")


def test_hook_subscription_is_all_narrowed_to_the_workers_events_and_hooks() -> None:
    events, filters = hook_subscription((*SUBSCRIBED_EVENTS, "CUSTOM", "CHANNEL_CREATE"))
    assert events == ("ALL",)
    named = [value for header, value in filters if header == "Event-Name"]
    assert named == list(dict.fromkeys(SUBSCRIBED_EVENTS))
    assert filters[-1] == ("Event-Subclass", "/^callworker::/")
    sub = Subscription()
    sub.add(list(events))
    for header, value in filters:
        sub.add_filter(header, value)
    wanted = {
        ("CUSTOM", "callworker::survey_done"): True, ("CUSTOM", "sofia::register"): False,
        ("CUSTOM", None): False, ("CHANNEL_ANSWER", None): True,
        ("CHANNEL_APPLICATION", "callworker::menu_choice"): True, ("CHANNEL_APPLICATION", None): False,
        ("CHANNEL_HANGUP_COMPLETE", None): True, ("BACKGROUND_JOB", None): True,
        ("CHANNEL_STATE", None): False, ("HEARTBEAT", None): False,
    }
    for (name, subclass), expected in wanted.items():
        assert sub.wants(name, subclass) is expected, (name, subclass)
    # Decided before the event is built, the same way as on the built event.
    for subclass in ("callworker::survey_done", "sofia::register"):
        built = hook_event(subclass, {})
        assert sub.passes(built) is sub.wants("CUSTOM", subclass)
