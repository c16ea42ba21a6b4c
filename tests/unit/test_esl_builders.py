"""FreeSWITCH command strings: exact text for good values, UnsafeValue for anything else."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callworker.errors import UnsafeValue
from callworker.esl import builders
from callworker.esl.builders import (
    check_number,
    check_uuid,
    originate,
    recording_path,
    show_channels_json,
    sound_source,
    tone_source,
    uuid_audio_mute,
    uuid_broadcast_play,
    uuid_exists,
    uuid_hold,
    uuid_kill,
    uuid_record,
    uuid_send_dtmf,
)

CALL = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3"

UNSAFE = [
    "",
    "15551234567\n",
    "1555 1234567",
    "&bridge(user/1)",
    "{x=1}15551234567",
    "1555,1234567",
    "1555|1234567",
    "1555'1234567",
    "15551234567\r\nexit",
    "١٢٣٤٥٦٧",  # digits, but not ASCII digits
]


def base(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "call_id": CALL,
        "destination_number": "15551234567",
        "gateway": "default",
        "timeout_s": 30,
    }
    args.update(overrides)
    return args


def test_originate_minimal() -> None:
    assert originate(**base()) == (
        f"originate {{origination_uuid={CALL},originate_timeout=30,ignore_early_media=true}}"
        "sofia/gateway/default/15551234567 &park()"
    )


def test_originate_with_every_option() -> None:
    text = originate(
        **base(destination_number="+4930123456", gateway="carrier-1.eu", timeout_s=45),
        caller_id_number="+15550001111",
        caller_id_name="Acme Support",
        privacy=True,
        variables={"callworker_tenant": "t-42", "callworker_flow": "x"},
    )
    assert text == (
        f"originate {{origination_uuid={CALL},originate_timeout=45,ignore_early_media=true,"
        "origination_caller_id_number=+15550001111,"
        "origination_caller_id_name='Acme Support',"
        "origination_privacy=screen:hide_name:hide_number,sip_cid_type=pid,"
        "sip_invite_from_uri=sip:anonymous@anonymous.invalid,sip_from_display=Anonymous,"
        "callworker_tenant=t-42,callworker_flow=x}"
        "sofia/gateway/carrier-1.eu/+4930123456 &park()"
    )


def test_simple_commands() -> None:
    assert uuid_kill(CALL) == f"uuid_kill {CALL} NORMAL_CLEARING"
    assert uuid_kill(CALL, "USER_BUSY") == f"uuid_kill {CALL} USER_BUSY"
    assert uuid_hold(CALL, True) == f"uuid_hold {CALL}"
    assert uuid_hold(CALL, False) == f"uuid_hold off {CALL}"
    assert uuid_audio_mute(CALL, True) == f"uuid_audio {CALL} start read mute 1"
    assert uuid_audio_mute(CALL, False) == f"uuid_audio {CALL} start read mute 0"
    assert uuid_exists(CALL) == f"uuid_exists {CALL}"
    assert show_channels_json() == "show channels as json"


@pytest.mark.parametrize("bad", UNSAFE)
def test_unsafe_numbers_are_refused_everywhere(bad: str) -> None:
    with pytest.raises(UnsafeValue):
        originate(**base(destination_number=bad))
    with pytest.raises(UnsafeValue):
        originate(**base(), caller_id_number=bad)
    with pytest.raises(UnsafeValue):
        check_number(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not-a-uuid",
        CALL.upper(),
        CALL + "\n",
        CALL + " USER_BUSY",
        CALL[:-1],
        "{" + CALL[1:],
        CALL.replace("-", ""),
    ],
)
def test_non_uuids_are_refused_everywhere(bad: str) -> None:
    for build in (
        lambda: originate(**base(call_id=bad)),
        lambda: uuid_kill(bad),
        lambda: uuid_hold(bad, True),
        lambda: uuid_hold(bad, False),
        lambda: uuid_audio_mute(bad, True),
        lambda: uuid_exists(bad),
        lambda: check_uuid(bad),
    ):
        with pytest.raises(UnsafeValue):
            build()


@pytest.mark.parametrize(
    "bad", ["user_busy", "USER BUSY", "USER_BUSY\nexit", "", "1", "NORMAL,CLEARING"]
)
def test_bad_causes_are_refused(bad: str) -> None:
    with pytest.raises(UnsafeValue):
        uuid_kill(CALL, bad)


@pytest.mark.parametrize(
    "field, bad",
    [
        ("caller_id_name", "O'Brien"),
        ("caller_id_name", "A,B"),
        ("caller_id_name", "{x}"),
        ("caller_id_name", "line\nbreak"),
        ("caller_id_name", "x" * 65),
        ("caller_id_name", ""),
        ("gateway", "gw/../other"),
        ("gateway", "gw name"),
        ("gateway", "-gw"),
        ("gateway", ""),
        ("timeout_s", 0),
        ("timeout_s", 601),
        ("timeout_s", "30"),
    ],
)
def test_other_unsafe_fields_are_refused(field: str, bad: Any) -> None:
    args = base()
    if field == "caller_id_name":
        with pytest.raises(UnsafeValue):
            originate(**args, caller_id_name=bad)
    else:
        args[field] = bad
        with pytest.raises(UnsafeValue):
            originate(**args)


@pytest.mark.parametrize(
    "variables",
    [
        {"Bad": "x"},
        {"a b": "x"},
        {"ok": "a,b"},
        {"ok": "a b"},
        {"ok": "}"},
        {"ok": "&bridge(user/1)"},
        {"ok": "'"},
        {"ok": "|"},
        {"ok": "x\n"},
    ],
)
def test_unsafe_variables_are_refused(variables: dict[str, str]) -> None:
    with pytest.raises(UnsafeValue):
        originate(**base(), variables=variables)


# Characters that would end a value, start a new variable or leg, or a new command.
_BREAKERS = re.compile(r"[\s,{}|&'\"\\;()\[\]<>^$]")


_TEXT = st.one_of(
    st.text(),
    st.from_regex(r"[A-Za-z0-9+._:-]{1,40}", fullmatch=True),
    st.text(alphabet="0123456789abcdefABCDEF+-_ ,.:\n\r{}|&'()/", max_size=40),
)


@settings(max_examples=500)
@given(_TEXT)
def test_any_text_is_either_refused_or_inert(value: str) -> None:
    for field in ("destination_number", "gateway", "call_id"):
        try:
            text = originate(**base(**{field: value}))
        except UnsafeValue:
            continue
        assert value and not _BREAKERS.search(value)
        assert text.count("{") == 1 and text.count("}") == 1 and text.endswith(" &park()")
    try:
        text = originate(**base(), caller_id_name=value)
    except UnsafeValue:
        pass
    else:
        assert re.fullmatch(r"[A-Za-z0-9 ._-]{1,64}", value)
        assert f"origination_caller_id_name='{value}'" in text
    for build in (
        lambda: originate(**base(), caller_id_number=value),
        lambda: originate(**base(), variables={"callworker_x": value}),
        lambda: originate(**base(), variables={value: "1"}),
        lambda: uuid_kill(CALL, value),
        lambda: uuid_kill(value),
        lambda: uuid_hold(value, True),
        lambda: uuid_audio_mute(value, False),
    ):
        try:
            text = build()
        except UnsafeValue:
            continue
        assert not _BREAKERS.search(value) and "\n" not in text



# --- media -----------------------------------------------------------------------------

PLAYBACK = "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


def test_media_commands() -> None:
    assert tone_source("400,200,425", 3) == "tone_stream://%(400,200,425);loops=3"
    assert sound_source("/usr/share/freeswitch/sounds/", "hello-1.wav", 1) == "/usr/share/freeswitch/sounds/hello-1.wav"
    assert sound_source("/s", "a.wav", 3) == "file_string:///s/a.wav!/s/a.wav!/s/a.wav"
    assert uuid_broadcast_play(CALL, PLAYBACK, tone_source("1,2,3", 1)) == (
        f"uuid_broadcast {CALL} {{callworker_playback_id={PLAYBACK}}}tone_stream://%(1,2,3);loops=1 aleg"
    )
    assert uuid_send_dtmf(CALL, "0123456789*#ABCD") == f"uuid_send_dtmf {CALL} 0123456789*#ABCD"
    path = recording_path("/var/lib/freeswitch/recordings", "acme", CALL, PLAYBACK)
    assert path == f"/var/lib/freeswitch/recordings/acme/{CALL}/{PLAYBACK}.wav"
    assert uuid_record(CALL, "start", path) == f"uuid_record {CALL} start {path}"
    assert uuid_record(CALL, "stop", path) == f"uuid_record {CALL} stop {path}"


@pytest.mark.parametrize("build", [
    lambda b: b.tone_source("1,2,3", 0),
    lambda b: b.tone_source("1,2,3", 101),
    lambda b: b.tone_source("1,2,3", True),
    lambda b: b.tone_source("1,2,3,4", 1),
    lambda b: b.tone_source("123456,1,1", 1),
    lambda b: b.sound_source("/s", "../x.wav", 1),
    lambda b: b.sound_source("/s", "x.mp3", 1),
    lambda b: b.sound_source("/s/../etc", "x.wav", 1),
    lambda b: b.sound_source("relative", "x.wav", 1),
    lambda b: b.uuid_broadcast_play(CALL, PLAYBACK, "/s/x.wav both\n\napi hupall"),
    lambda b: b.uuid_broadcast_play(CALL, PLAYBACK, "{api_on_answer=hupall}/s/x.wav"),
    lambda b: b.uuid_broadcast_play(CALL, "not-a-uuid", "/s/x.wav"),
    lambda b: b.uuid_send_dtmf(CALL, "1@20000"),
    lambda b: b.uuid_send_dtmf(CALL, "abc"),
    lambda b: b.uuid_send_dtmf(CALL, ""),
    lambda b: b.recording_path("/r", "Acme", CALL, PLAYBACK),
    lambda b: b.recording_path("/r/./x", "acme", CALL, PLAYBACK),
    lambda b: b.uuid_record(CALL, "mask", f"/r/acme/{CALL}/{PLAYBACK}.wav"),
    lambda b: b.uuid_record(CALL, "start", "/etc/passwd"),
    lambda b: b.uuid_record(CALL, "start", f"/r/../acme/{CALL}/{PLAYBACK}.wav"),
])
def test_unsafe_media_values_are_refused(build: Any) -> None:
    with pytest.raises(UnsafeValue):
        build(builders)
