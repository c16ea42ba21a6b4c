"""``originate``: from the dial string to a running call greenlet."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable

from callworker.simulator.causes import cause_from_text
from callworker.simulator.channel import Channel
from callworker.simulator.dialstring import UsageError, parse_originate
from callworker.simulator.scenarios import outcome_for, run_call
from callworker.simulator.switch import Switch
from callworker.simulator.variables import REMOTE_IP, Leg, creation_vars

__all__ = ["originate", "resolve_endpoint"]

Target = tuple[Leg, str, str]  # leg, dialled number, channel name


def resolve_endpoint(endpoint: str, local_ip: str) -> Target | str:
    """The leg to dial, or the cause name of a failure before any channel exists."""
    tech, _, rest = endpoint.partition("/")
    tech = tech.lower()
    if tech == "error":
        return cause_from_text(rest)
    if tech == "sofia":
        profile, _, dest = rest.partition("/")
        if profile == "gateway":
            gateway, _, number = dest.partition("/")
            if not gateway or not number:
                return "INVALID_URL"
            return Leg("external", gateway, REMOTE_IP, local_ip), number, f"sofia/external/{number}"
        if not profile or not dest:
            return "INVALID_URL"
        user, _, host = dest.partition("@")
        return Leg(profile, None, host or REMOTE_IP, local_ip), user, f"sofia/{profile}/{dest}"
    if tech == "user" and rest:
        user, _, domain = rest.partition("@")
        domain = domain or local_ip
        return Leg("internal", None, domain, local_ip), user, f"sofia/internal/{user}@{domain}"
    if tech == "loopback" and rest:
        exten = rest.split("/", 1)[0]
        return Leg("loopback", None, local_ip, local_ip), exten, f"loopback/{exten}-a"
    return "CHAN_NOT_IMPLEMENTED"


def originate(sw: Switch, text: str, on_result: Callable[[str], None]) -> None:
    """Start a call; ``on_result`` gets ``+OK <uuid>\\n`` or ``-ERR <CAUSE>\\n`` (or usage) once."""
    try:
        args = parse_originate(text)
    except UsageError as exc:
        on_result(str(exc))
        return
    target = resolve_endpoint(args.endpoint, sw.ipv4)
    if isinstance(target, str):
        on_result(f"-ERR {target}\n")
        return
    leg, number, name = target
    wanted = args.var("origination_uuid")
    if wanted and wanted in sw.channels:
        # The session cannot take a UUID in use ("Duplicate UUID!"): no channel is made.
        on_result("-ERR DESTINATION_OUT_OF_ORDER\n")
        return
    privacy = (args.var("origination_privacy") or "").lower()
    ch = Channel(
        uuid=wanted or str(uuidlib.uuid4()),
        name=name,
        number=number,
        cid_name=args.var("origination_caller_id_name") or args.cid_name or "",
        cid_num=args.var("origination_caller_id_number") or args.cid_num or "0000000000",
        session_id=sw.next_session_id(),
        hide_name="hide_name" in privacy,
        hide_number="hide_number" in privacy,
        state="CS_NONE",
        created_us=sw.now_us(),
        ignore_early_media=_ignores_early_media(args.var("ignore_early_media")),
    )
    ch.variables.update(creation_vars(ch, leg, args.variables))
    sw.add_channel(ch)
    sw.spawn_call(run_call, sw, ch, outcome_for(number), float(args.timeout),
                  (args.app, args.app_arg), on_result)


def _ignores_early_media(value: str | None) -> bool:
    """``ignore_early_media=true|ring_ready|consume``: the originate waits for the answer."""
    text = (value or "").strip().lower()
    return text in ("true", "yes", "on", "1", "ring_ready", "consume")
