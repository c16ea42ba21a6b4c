"""CALLWORKER_CONTEXTS and CALLWORKER_MAX_CALL_DURATION_S, read from the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from callworker.config import Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLWORKER_CONTEXTS", raising=False)
    monkeypatch.delenv("CALLWORKER_MAX_CALL_DURATION_S", raising=False)
    settings = Settings()
    assert settings.contexts == ("default",)
    assert settings.max_call_duration_s == 4 * 3600


def test_contexts_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLWORKER_CONTEXTS", " ivr, queues ,default")
    monkeypatch.setenv("CALLWORKER_MAX_CALL_DURATION_S", "600")
    settings = Settings()
    assert settings.contexts == ("ivr", "queues", "default")
    assert settings.max_call_duration_s == 600


@pytest.mark.parametrize(("name", "value"), [
    ("CALLWORKER_CONTEXTS", ""), ("CALLWORKER_CONTEXTS", "ivr,bad context"), ("CALLWORKER_CONTEXTS", "-x"),
    ("CALLWORKER_MAX_CALL_DURATION_S", "0"), ("CALLWORKER_MAX_CALL_DURATION_S", "86401"),
])
def test_a_malformed_setting_is_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
