"""CALLWORKER_SOUNDS_DIR and CALLWORKER_RECORDINGS_DIR: FreeSWITCH's paths, allow-listed, since
both reach FreeSWITCH inside commands."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from callworker.config import Settings


def test_defaults_are_freeswitchs_packaged_directories(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLWORKER_SOUNDS_DIR", raising=False)
    monkeypatch.delenv("CALLWORKER_RECORDINGS_DIR", raising=False)
    settings = Settings()
    assert settings.sounds_dir == "/usr/share/freeswitch/sounds"
    assert settings.recordings_dir == "/var/lib/freeswitch/recordings"


def test_read_from_the_environment_without_a_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLWORKER_SOUNDS_DIR", "/opt/sounds/en/")
    monkeypatch.setenv("CALLWORKER_RECORDINGS_DIR", "/srv/fs-recordings")
    settings = Settings()
    assert (settings.sounds_dir, settings.recordings_dir) == ("/opt/sounds/en", "/srv/fs-recordings")


@pytest.mark.parametrize("bad", ["relative/dir", "/a b", "/a/../etc", "/x\n", "/x;y", "/x,y", "/{x}", ""])
@pytest.mark.parametrize("name", ["sounds_dir", "recordings_dir"])
def test_a_path_that_could_change_a_command_is_refused(name: str, bad: str) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings.model_validate({name: bad})
