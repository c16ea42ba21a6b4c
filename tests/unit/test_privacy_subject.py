"""What names a phone number or a user, and what its erased form is."""

from __future__ import annotations

import pytest

from callworker.store.privacy import ERASED_PREFIX, Subject, privacy_key

KEY = privacy_key(b"test-key")


def phone(number: str, tenant: str = "acme") -> Subject:
    return Subject.of(KEY, tenant, phone_number=number)


def user(user_id: str, tenant: str = "acme") -> Subject:
    return Subject.of(KEY, tenant, user_id=user_id)


def test_a_token_is_keyed_per_tenant_and_value_and_fits_a_number_column() -> None:
    token = phone("+15551230001").token
    assert token.startswith(ERASED_PREFIX) and len(token) <= 32
    assert phone("15551230001").token == token  # with or without '+': one number
    assert phone("+15551230001", "other").token != token  # no linking across tenants
    assert Subject.of(privacy_key(b"another-key"), "acme", phone_number="+15551230001").token != token
    assert user("15551230001").token != token  # a user id is not a phone number
    assert "5551230001" not in token


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("+15551230001", True),
        ("15551230001", True),
        ("sofia/gateway/default/+15551230001", True),
        ("sip:15551230001@10.0.0.1", True),
        ("call +15551230001 now", True),
        ("+115551230001", False),  # a longer number
        ("155512300012", False),
        ("+25551230001", False),
        ("0x15551230001", False),
        ("a15551230001", False),
        ("", False),
    ],
)
def test_a_phone_number_is_named_only_as_a_whole_number(text: str, named: bool) -> None:
    assert phone("+15551230001").names(text) is named


def test_a_short_number_is_never_found_inside_uuids_or_times() -> None:
    subject = phone("123")
    assert not subject.names("5f0c0123-4b32-4123-9f77-df0ca215b123f")
    assert not subject.names("2026-11-22T10:31:00.123456+00:00")
    assert subject.names("123") and subject.names("dial 123")


def test_scrubbing_replaces_every_occurrence_in_json_and_nothing_else() -> None:
    subject = phone("+15551230001")
    event = {
        "call_id": "5f0c0123-4b32-4123-9f77-df0ca215bbe7", "seq": 15551230001,
        "data": {"destination_number": "+15551230001", "caller_id_number": "15551230001",
                 "headers": ["sofia/gateway/default/+15551230001", "+15551230002"], "mos": 4.5},
    }
    scrubbed = subject.scrub(event)
    token = subject.token
    assert scrubbed["data"]["destination_number"] == token == scrubbed["data"]["caller_id_number"]
    assert scrubbed["data"]["headers"] == [f"sofia/gateway/default/{token}", "+15551230002"]
    assert scrubbed["seq"] == 15551230001 and scrubbed["call_id"] == event["call_id"]  # a number is no text
    assert subject.scrub(scrubbed) == scrubbed  # erasing twice changes nothing more


def test_a_user_is_named_by_an_equal_value_only() -> None:
    subject = user("bob")
    assert subject.names("bob") and not subject.names("bobby") and not subject.names("Bob")
    assert subject.scrub({"user_id": "bob", "note": "bob and alice", "who": ["bob"]}) == {
        "user_id": subject.token, "note": "bob and alice", "who": [subject.token]}


def test_a_subject_is_one_thing() -> None:
    with pytest.raises(ValueError):
        Subject.of(KEY, "acme")
    with pytest.raises(ValueError):
        Subject.of(KEY, "acme", phone_number="+15551230001", user_id="bob")
