"""Channel header blocks in the order FreeSWITCH 1.10 writes them.

``switch_channel_event_set_basic_data`` (channel data, then the caller profile)
goes on every channel event; ``variable_*`` headers only on the event types in
``VARIABLE_EVENTS`` (SPEC section 1). The blocks that cannot change after the
channel is made are built once and kept in ``Channel.cache``; the rest are a few
short lines of state names and numbers, which need no URL encoding.
"""

from __future__ import annotations

from collections.abc import Callable

from callworker.simulator.channel import Channel
from callworker.simulator.events import Block
from callworker.simulator.variables import REMOTE_IP

__all__ = ["VARIABLE_EVENTS", "channel_blocks", "profile_pairs", "wants_variables", "safe_block",
           "CODEC"]

VARIABLE_EVENTS = frozenset({
    "CHANNEL_CREATE", "CHANNEL_ORIGINATE", "CHANNEL_UUID", "CHANNEL_ANSWER", "CHANNEL_PARK",
    "CHANNEL_UNPARK", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "REQUEST_PARAMS",
    "CHANNEL_DATA", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_DESTROY",
    "SESSION_HEARTBEAT", "API", "RECORD_START", "RECORD_STOP", "PLAYBACK_START", "PLAYBACK_STOP",
    "CALL_UPDATE", "MEDIA_BUG_START", "MEDIA_BUG_STOP", "CHANNEL_HOLD", "CHANNEL_UNHOLD", "TEXT",
    "CUSTOM",
})

CODEC = ("PCMU", "8000", "64000")


def wants_variables(event_name: str) -> bool:
    return event_name in VARIABLE_EVENTS


def safe_block(pairs: list[tuple[str, str]]) -> Block:
    """A block whose values are known to need no escaping (state names, numbers)."""
    return Block(pairs, "".join([f"{n}: {v}\n" for n, v in pairs if v != ""]).encode())


def _cached(ch: Channel, key: str, pairs_fn: Callable[[Channel], list[tuple[str, str]]]) -> Block:
    block = ch.cache.get(key)
    if block is None:
        block = ch.cache[key] = Block(pairs_fn(ch))
    return block


def _identity(ch: Channel) -> list[tuple[str, str]]:
    return [
        ("Channel-Name", ch.name),
        ("Unique-ID", ch.uuid),
        ("Call-Direction", ch.direction),
        ("Presence-Call-Direction", ch.direction),
        # An inbound leg went through the dialplan; an originated one once it succeeded.
        ("Channel-HIT-Dialplan", "true" if ch.direction == "inbound" or ch.flipped else "false"),
        ("Channel-Call-UUID", ch.variables.get("call_uuid") or ch.uuid),
    ]


def _codecs(ch: Channel) -> list[tuple[str, str]]:
    name, rate, bits = CODEC
    return [
        ("Channel-Read-Codec-Name", name), ("Channel-Read-Codec-Rate", rate),
        ("Channel-Read-Codec-Bit-Rate", bits), ("Channel-Write-Codec-Name", name),
        ("Channel-Write-Codec-Rate", rate), ("Channel-Write-Codec-Bit-Rate", bits),
    ]


def _caller_head(ch: Channel) -> list[tuple[str, str]]:
    if ch.direction == "inbound":
        return _inbound_caller_head(ch)
    # The callee is "Outbound Call" until the far end responds with its number; once the
    # originate succeeds FreeSWITCH swaps caller and callee (the Orig-* fields stay).
    caller = (ch.cid_name, ch.cid_num)
    callee = (ch.number, ch.number) if ch.responded else ("Outbound Call", ch.number)
    if ch.flipped:
        caller, callee = callee, caller
    network = [("Caller-Network-Addr", REMOTE_IP)] if ch.responded else []
    return [
        ("Caller-Direction", "outbound"),
        ("Caller-Logical-Direction", "outbound"),
        ("Caller-Caller-ID-Name", caller[0]),
        ("Caller-Caller-ID-Number", caller[1]),
        ("Caller-Orig-Caller-ID-Name", ch.cid_name),
        ("Caller-Orig-Caller-ID-Number", ch.cid_num),
        ("Caller-Callee-ID-Name", callee[0]),
        ("Caller-Callee-ID-Number", callee[1]),
        *network,
        ("Caller-ANI", ch.cid_num),
        ("Caller-Destination-Number", ch.number),
        ("Caller-Unique-ID", ch.uuid),
        ("Caller-Source", "src/switch_ivr_originate.c"),
        ("Caller-Context", "default"),
        ("Caller-Channel-Name", ch.name),
        ("Caller-Profile-Index", "1"),
    ]


def _inbound_caller_head(ch: Channel) -> list[tuple[str, str]]:
    """The profile sofia builds from an INVITE (capture 15, plus 1.10's logical direction)."""
    return [
        ("Caller-Direction", "inbound"),
        ("Caller-Logical-Direction", "inbound"),
        ("Caller-Username", ch.cid_num),
        ("Caller-Dialplan", "XML"),
        ("Caller-Caller-ID-Name", ch.cid_name),
        ("Caller-Caller-ID-Number", ch.cid_num),
        ("Caller-Orig-Caller-ID-Name", ch.cid_name),
        ("Caller-Orig-Caller-ID-Number", ch.cid_num),
        ("Caller-Network-Addr", REMOTE_IP),
        ("Caller-ANI", ch.cid_num),
        ("Caller-Destination-Number", ch.number),
        ("Caller-Unique-ID", ch.uuid),
        ("Caller-Source", "mod_sofia"),
        ("Caller-Context", ch.context),
        ("Caller-Channel-Name", ch.name),
        ("Caller-Profile-Index", "1"),
    ]


def _caller_tail(ch: Channel) -> list[tuple[str, str]]:
    return [
        ("Caller-Screen-Bit", "true"),
        ("Caller-Privacy-Hide-Name", "true" if ch.hide_name else "false"),
        ("Caller-Privacy-Hide-Number", "true" if ch.hide_number else "false"),
    ]


def _times(ch: Channel) -> Block:
    created = str(ch.created_us)
    return safe_block([
        ("Caller-Profile-Created-Time", created),
        ("Caller-Channel-Created-Time", created),
        ("Caller-Channel-Answered-Time", str(ch.answered_us)),
        ("Caller-Channel-Progress-Time", str(ch.progress_us)),
        ("Caller-Channel-Progress-Media-Time", str(ch.progress_media_us)),
        ("Caller-Channel-Hangup-Time", str(ch.hangup_us)),
        ("Caller-Channel-Transfer-Time", "0"),
        ("Caller-Channel-Resurrect-Time", "0"),
        ("Caller-Channel-Bridged-Time", "0"),
        ("Caller-Channel-Last-Hold", str(ch.last_hold_us)),
        ("Caller-Channel-Hold-Accum", str(ch.hold_accum_us)),
    ])


def profile_pairs(ch: Channel, prefix: str) -> list[tuple[str, str]]:
    """The caller profile under another prefix, as ``connect`` puts it before the channel data.

    ``switch_caller_profile_event_set_data(profile, "Channel", event)``: the same
    fields as the ``Caller-*`` block, named ``Channel-*`` (capture 15).
    """
    caller = [*_cached(ch, "caller", _caller_head).pairs, *_times(ch).pairs,
              *_cached(ch, "tail", _caller_tail).pairs]
    return [(f"{prefix}-{name.removeprefix('Caller-')}", value) for name, value in caller]


def channel_blocks(ch: Channel, *, variables: bool, state_number: int | None = None) -> list[Block]:
    """Channel data, caller profile and (if asked) variables, as blocks.

    ``Channel-State`` is the running state and ``Channel-State-Number`` the desired
    one; ``state_number`` gives the latter where they differ (CHANNEL_HANGUP still
    shows the running state from before the hangup, with the number 10).
    """
    number = ch.state_number if state_number is None else state_number
    top = [
        ("Channel-State", ch.state),
        ("Channel-Call-State", ch.call_state),
        ("Channel-State-Number", str(number)),
    ]
    answer = [("Answer-State", ch.answer_state)]
    if ch.hangup_cause:
        answer.append(("Hangup-Cause", ch.hangup_cause))
    blocks = [safe_block(top), _cached(ch, "identity", _identity), safe_block(answer)]
    if ch.media:
        blocks.append(_cached(ch, "codecs", _codecs))
    blocks += [_cached(ch, "caller", _caller_head), _times(ch), _cached(ch, "tail", _caller_tail)]
    if ch.other_leg:
        blocks.append(safe_block([("Other-Leg-Unique-ID", ch.other_leg)]))
    if variables:
        blocks.append(ch.variables.block())
    return blocks
