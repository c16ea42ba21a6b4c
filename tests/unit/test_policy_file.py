"""The policy file: what it accepts, and how it says what is wrong (key, line, never a value)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from callworker.policy import PolicyFileError, parse_policy, read_policy_file

EXAMPLE = """\
admin_token: "admin-secret-1"
tenants:
  acme:
    token: "acme-secret-2"
    can_call: true
    calls_per_minute: 60
    calls_per_day: 10000
    max_concurrent: 100
    rates:
      - {prefix: "+44", cents_per_minute: 2, increment_s: 60, min_s: 0}
      - {prefix: "+4420", cents_per_minute: 1.5, increment_s: 6, min_s: 30}
    users:
      alice: {can_call: false}
      bob: {calls_per_day: 50}
  beta: {}
"""


def test_the_contracts_example_reads_as_written() -> None:
    policy = parse_policy(EXAMPLE)
    acme = policy.tenants["acme"]
    assert (acme.can_call, acme.calls_per_minute, acme.calls_per_day, acme.max_concurrent) == (True, 60, 10000, 100)
    assert [(r.prefix, r.cents_per_minute, r.increment_s, r.min_s) for r in acme.rates] == [
        ("+44", Decimal("2"), 60, 0), ("+4420", Decimal("1.5"), 6, 30)]
    assert acme.users["alice"].can_call is False and acme.users["bob"].calls_per_day == 50
    assert acme.token is not None and acme.token.get_secret_value() == "acme-secret-2"
    beta = policy.tenants["beta"]
    assert (beta.can_call, beta.calls_per_minute, beta.calls_per_day, beta.max_concurrent) == (None,) * 4
    assert "secret" not in repr(policy)


def test_json_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"tenants": {"acme": {"calls_per_minute": 5, "rates": [{"prefix": "1", "cents_per_minute": 3}]}}}')
    policy = read_policy_file(path)
    assert policy.tenants["acme"].calls_per_minute == 5
    assert policy.tenants["acme"].rates[0].increment_s == 1


@pytest.mark.parametrize(
    ("text", "where", "why"),
    [
        ("tenants:\n  acme:\n    calls_per_minute: 0\n", "tenants.acme.calls_per_minute (line 3)",
         "greater than or equal to 1"),
        ("tenants:\n  acme:\n    calls_per_minute: '60'\n", "tenants.acme.calls_per_minute (line 3)", "valid integer"),
        ("tenants:\n  acme:\n    call_per_minute: 60\n", "tenants.acme.call_per_minute (line 3)", "not permitted"),
        ("tenants:\n  acme:\n    rates:\n      - {prefix: +44, cents_per_minute: 2}\n",
         "tenants.acme.rates.0.prefix (line 4)", "valid string"),
        ("tenants:\n  acme:\n    rates:\n      - {prefix: '+44', cents_per_minute: 0.12345}\n",
         "tenants.acme.rates.0.cents_per_minute (line 4)", "at most 4 decimal places"),
        ("tenants:\n  acme:\n    users:\n      'bad user': {}\n", "tenants.acme.users.bad user (line 4)", "user id"),
        ("tenants:\n  admin: {}\n", "tenants.admin (line 2)", "reserved"),
        ("tenants:\n  Acme: {}\n", "tenants.Acme (line 2)", "tenant name"),
        ("tenants:\n  acme:\n    can_call: 1\n", "tenants.acme.can_call (line 3)", "valid boolean"),
    ],
)
def test_a_wrong_value_is_refused_naming_its_key_and_line(text: str, where: str, why: str) -> None:
    with pytest.raises(PolicyFileError) as refused:
        parse_policy(text)
    message = str(refused.value)
    assert message.startswith(where), message
    assert why in message
    assert "\n" not in message


def test_messages_never_repeat_the_files_values() -> None:
    cases = [
        'admin_token: "tok-abc123"\ntenants: {acme: {token: "tok-xyz789", calls_per_day: "tok-777"}}\n',
        'admin_token: "tok-abc123\ntenants: {}\n',  # unterminated quote: a YAML error
        'admin_token: "tok-abc123"\ntenants: [tok-xyz789]\n',
    ]
    for text in cases:
        with pytest.raises(PolicyFileError) as refused:
            parse_policy(text)
        assert "tok-" not in str(refused.value), str(refused.value)
    with pytest.raises(PolicyFileError) as refused:
        parse_policy('{"admin_token": "tok-abc123", "tenants": {"acme": {"token": 5}', as_json=True)
    assert "tok-" not in str(refused.value) and "line 1" in str(refused.value)


@pytest.mark.parametrize("text", ["", "  \n", "# only a comment\n", "- a list\n", "just text\n"])
def test_an_empty_or_shapeless_file_is_refused(text: str) -> None:
    # An editor truncating the file before writing it must not lift every limit.
    with pytest.raises(PolicyFileError):
        parse_policy(text)


def test_a_missing_or_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="cannot be read"):
        read_policy_file(tmp_path / "absent.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyFileError, match="not UTF-8"):
        read_policy_file(binary)
