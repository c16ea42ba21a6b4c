"""FreeSWITCH API command strings, built by pure functions from checked values.

Every value is checked against an allow-list here, even when the contract layer
has validated it already: a newline, a space, a comma or a brace in a phone
number would otherwise become a second ESL command or a second dial-string leg.
"""

from __future__ import annotations

import re

from callworker.errors import UnsafeValue

__all__ = [
    "originate",
    "uuid_kill",
    "uuid_hold",
    "uuid_audio_mute",
    "uuid_exists",
    "uuid_bridge",
    "uuid_transfer",
    "check_extension",
    "check_context",
    "uuid_broadcast_play",
    "uuid_send_dtmf",
    "uuid_record",
    "sound_source",
    "tone_source",
    "recording_path",
    "show_channels_json",
    "check_uuid",
    "check_number",
]

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_NUMBER = re.compile(r"\+?[0-9]{3,15}\Z")
_CID_NAME = re.compile(r"[A-Za-z0-9 ._-]{1,64}\Z")
_GATEWAY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_CAUSE = re.compile(r"[A-Z][A-Z0-9_]{1,63}\Z")
_EXTENSION = re.compile(r"[A-Za-z0-9_+*#-]{1,32}\Z")
_CONTEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_MAX_DURATION_S = 86400
# Comfort noise while parked (the divisor of FreeSWITCH's generated noise level: quiet),
# so the far end's carrier never sees a silent stream and drops the call.
_SILENCE_WHEN_IDLE = "400"
_VAR_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
_VAR_VALUE = re.compile(r"[A-Za-z0-9._:+-]{0,128}\Z")
# Extra channel variables are allow-listed by name too: FreeSWITCH runs the value of
# some (api_on_answer, execute_on_answer, api_hangup_hook, transfer_after_bridge, ...)
# as a command, and one safe word such as "hupall" is a whole command.
_OWN_VARIABLE_PREFIX = "callworker_"
# A hidden caller ID, as carriers honour it (RFC 3323/3325). FreeSWITCH's privacy flags
# alone change only the Remote-Party-ID; the From header would still carry the number
# and the name. So the From is anonymous, and the real number goes to the carrier in
# P-Asserted-Identity (sip_cid_type=pid; "screen" makes it asserted rather than
# preferred) with "Privacy: id", which tells it to withhold the number from the callee.
_PRIVACY = (
    ("origination_privacy", "screen:hide_name:hide_number"),
    ("sip_cid_type", "pid"),
    ("sip_invite_from_uri", "sip:anonymous@anonymous.invalid"),
    ("sip_from_display", "Anonymous"),
)
_INERT_VARIABLES: frozenset[str] = frozenset()


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise UnsafeValue(f"{what} is not allowed in a FreeSWITCH command")
    return value


def check_uuid(value: str) -> str:
    return _check(_UUID, value, "uuid")


def check_number(value: str) -> str:
    return _check(_NUMBER, value, "number")


def check_extension(value: str) -> str:
    return _check(_EXTENSION, value, "extension")


def check_context(value: str) -> str:
    return _check(_CONTEXT, value, "context")


def _max_duration_pairs(max_duration_s: int | None) -> list[tuple[str, str]]:
    """Comfort silence, and the hangup at max_duration_s after answer (ALLOTTED_TIMEOUT)."""
    if max_duration_s is None:
        return []
    if type(max_duration_s) is not int or not 1 <= max_duration_s <= _MAX_DURATION_S:
        raise UnsafeValue("max duration is out of range")
    return [
        ("send_silence_when_idle", _SILENCE_WHEN_IDLE),
        ("execute_on_answer", f"'sched_hangup +{max_duration_s} ALLOTTED_TIMEOUT'"),
    ]


def originate(
    *,
    call_id: str,
    destination_number: str,
    gateway: str,
    timeout_s: int,
    caller_id_number: str | None = None,
    caller_id_name: str | None = None,
    privacy: bool = False,
    variables: dict[str, str] | None = None,
    max_duration_s: int | None = None,
    extension: tuple[str, str] | None = None,
) -> str:
    """``originate {vars}sofia/gateway/<gw>/<number> &park()`` for ``bgapi``.

    With ``max_duration_s`` the parked call hears comfort silence and is ended that
    long after answer; with ``extension`` (extension, context) the answered call goes
    to that dialplan extension instead of park.

    ``origination_uuid`` is the client's call_id, so the channel is addressable
    by it from the first event on and a repeated command cannot create a
    second channel unnoticed.
    """
    # type(), not isinstance(): True is an int, and would be sent as "True".
    if type(timeout_s) is not int or not 1 <= timeout_s <= 600:
        raise UnsafeValue("timeout is out of range")
    pairs = [
        ("origination_uuid", check_uuid(call_id)),
        ("originate_timeout", str(timeout_s)),
        # Without it FreeSWITCH's originate succeeds on a 183 with SDP (early media), and
        # originate_timeout no longer holds: the call rings until the carrier gives up.
        ("ignore_early_media", "true"),
    ]
    if caller_id_number is not None:
        pairs.append(("origination_caller_id_number", check_number(caller_id_number)))
    if caller_id_name is not None:
        # Single quotes protect the spaces the allow-list admits.
        pairs.append(
            ("origination_caller_id_name", f"'{_check(_CID_NAME, caller_id_name, 'name')}'")
        )
    if privacy:
        pairs.extend(_PRIVACY)
    pairs.extend(_max_duration_pairs(max_duration_s))
    for name, value in (variables or {}).items():
        pairs.append((_check_variable_name(name), _check(_VAR_VALUE, value, "variable value")))
    block = ",".join(f"{name}={value}" for name, value in pairs)
    endpoint = f"sofia/gateway/{_check(_GATEWAY, gateway, 'gateway')}/{check_number(destination_number)}"
    if extension is not None:
        target = f"{check_extension(extension[0])} XML {check_context(extension[1])}"
    else:
        target = "&park()"
    return f"originate {{{block}}}{endpoint} {target}"


def _check_variable_name(name: str) -> str:
    _check(_VAR_NAME, name, "variable name")
    if not name.startswith(_OWN_VARIABLE_PREFIX) and name not in _INERT_VARIABLES:
        # originate's own variables (origination_*) are set above, never overridden.
        raise UnsafeValue("only callworker_* and known inert variables can be set on a call")
    return name


def uuid_kill(call_id: str, cause: str = "NORMAL_CLEARING") -> str:
    return f"uuid_kill {check_uuid(call_id)} {_check(_CAUSE, cause, 'cause')}"


def uuid_hold(call_id: str, hold: bool) -> str:
    return f"uuid_hold {check_uuid(call_id)}" if hold else f"uuid_hold off {check_uuid(call_id)}"


def uuid_audio_mute(call_id: str, muted: bool) -> str:
    """Mute or unmute what is read from the call's far end: whatever the call is connected to
    (the other leg of a bridge) no longer hears it. FreeSWITCH has no uuid_mute."""
    return f"uuid_audio {check_uuid(call_id)} start read mute {1 if muted else 0}"


def uuid_bridge(call_id: str, other_id: str) -> str:
    """Bridge two live channels (FreeSWITCH sends CHANNEL_BRIDGE on the first)."""
    return f"uuid_bridge {check_uuid(call_id)} {check_uuid(other_id)}"


def uuid_transfer(call_id: str, extension: str, context: str) -> str:
    """Hand a channel to a dialplan extension."""
    return f"uuid_transfer {check_uuid(call_id)} {check_extension(extension)} XML {check_context(context)}"


# Media (docs/media.md). Directories come from the settings, names and ids from allow-lists.
_DIR = re.compile(r"/[A-Za-z0-9/._-]{0,200}\Z")
_SOUND = re.compile(r"[A-Za-z0-9_-]{1,64}\.wav\Z")
_TONE = re.compile(r"([0-9]{1,5}),([0-9]{1,5}),([0-9]{1,5})\Z")
_DIGITS = re.compile(r"[0-9*#A-D]{1,32}\Z")
_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}\Z")
_MAX_LOOPS = 100


def _check_dir(directory: str) -> str:
    _check(_DIR, directory, "directory")
    if {".", ".."} & set(directory.split("/")):
        raise UnsafeValue("directory is not allowed in a FreeSWITCH command")
    return directory.rstrip("/")


def _check_loops(loops: int) -> int:
    if type(loops) is not int or not 1 <= loops <= _MAX_LOOPS:
        raise UnsafeValue("loops is out of range")
    return loops


def tone_source(tone: str, loops: int) -> str:
    """``tone_stream://%(<on>,<off>,<hz>);loops=<n>``: one tone of ``loops`` cycles."""
    _check(_TONE, tone, "tone")
    return f"tone_stream://%({tone});loops={_check_loops(loops)}"


def sound_source(sounds_dir: str, sound: str, loops: int) -> str:
    """The sound's path; ``file_string://`` of it ``loops`` times (one playback, one start and stop)."""
    path = f"{_check_dir(sounds_dir)}/{_check(_SOUND, sound, 'sound')}"
    if _check_loops(loops) == 1:
        return path
    return "file_string://" + "!".join([path] * loops)


def uuid_broadcast_play(call_id: str, playback_id: str, source: str) -> str:
    """``uuid_broadcast <uuid> {callworker_playback_id=<id>}<source> aleg``.

    ``source`` comes from ``tone_source`` or ``sound_source`` (checked again here). The
    ``{...}`` prefix are file-handle parameters: FreeSWITCH adds them as headers to the
    PLAYBACK_START and PLAYBACK_STOP events of this playback, which is how they name it.
    """
    if not (_TONE_SOURCE.match(source) or _SOUND_SOURCE.match(source)):
        raise UnsafeValue("source is not allowed in a FreeSWITCH command")
    return f"uuid_broadcast {check_uuid(call_id)} {{callworker_playback_id={check_uuid(playback_id)}}}{source} aleg"


_TONE_SOURCE = re.compile(r"tone_stream://%\([0-9]{1,5},[0-9]{1,5},[0-9]{1,5}\);loops=[0-9]{1,3}\Z")
_SOUND_SOURCE = re.compile(r"(file_string://)?/[A-Za-z0-9/._!-]{1,30000}\Z")


def uuid_send_dtmf(call_id: str, digits: str) -> str:
    """Send DTMF digits to the far end of the call (RFC 2833 on SIP)."""
    return f"uuid_send_dtmf {check_uuid(call_id)} {_check(_DIGITS, digits, 'digits')}"


def recording_path(recordings_dir: str, tenant: str, call_id: str, recording_id: str) -> str:
    """``<recordings_dir>/<tenant>/<call_id>/<recording_id>.wav``."""
    return (
        f"{_check_dir(recordings_dir)}/{_check(_TENANT, tenant, 'tenant')}/{check_uuid(call_id)}/"
        f"{check_uuid(recording_id)}.wav"
    )


_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# <recordings dir>/<tenant>/<call_id>/<recording_id>.wav, no empty, "." or ".." segment.
_RECORDING_PATH = re.compile(rf"(/[A-Za-z0-9._-]{{1,200}}){{1,20}}/[a-z0-9][a-z0-9_-]{{0,62}}/{_ID}/{_ID}\.wav\Z")


def uuid_record(call_id: str, action: str, path: str) -> str:
    """``uuid_record <uuid> start|stop <path>`` of a path from ``recording_path``."""
    if action not in ("start", "stop"):
        raise UnsafeValue("record action is not allowed in a FreeSWITCH command")
    _check(_RECORDING_PATH, path, "recording path")
    if {".", ".."} & set(path.split("/")):
        raise UnsafeValue("recording path is not allowed in a FreeSWITCH command")
    return f"uuid_record {check_uuid(call_id)} {action} {path}"


def uuid_exists(call_id: str) -> str:
    return f"uuid_exists {check_uuid(call_id)}"


def show_channels_json() -> str:
    return "show channels as json"
