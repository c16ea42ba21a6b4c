"""``sendmsg``: call commands and dialplan applications run on a channel (SPEC section 2).

A few applications change the channel (``answer``, ``hangup``, ``set``); any
other one is reported as FreeSWITCH reports an application that ran and
returned: CHANNEL_EXECUTE, then CHANNEL_EXECUTE_COMPLETE with
``Application-Response: _none_``.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping

from callworker.simulator.causes import cause_from_text
from callworker.simulator.channel import Channel
from callworker.simulator.legs import answer_leg
from callworker.simulator.switch import Switch

__all__ = ["apply_message", "run_app"]


def apply_message(sw: Switch, ch: Channel, headers: Mapping[str, str], body: bytes = b"") -> None:
    """Act on one ``sendmsg``: ``call-command: execute`` or ``call-command: hangup``."""
    lowered = {name.lower(): value for name, value in headers.items()}
    command = lowered.get("call-command", "").lower()
    if command == "hangup":
        ch.request_hangup(cause_from_text(lowered.get("hangup-cause")))
    elif command == "execute":
        app = lowered.get("execute-app-name", "")
        arg = lowered.get("execute-app-arg", "")
        if lowered.get("content-type", "").lower() == "text/plain" and body:
            arg = body.decode("utf-8", "replace")  # the body is the argument
        if app:
            run_app(sw, ch, app, arg, lowered.get("event-uuid") or str(uuidlib.uuid4()))


def run_app(sw: Switch, ch: Channel, app: str, arg: str, app_uuid: str) -> None:
    """Run one application on a live channel, with its EXECUTE and EXECUTE_COMPLETE events."""
    if ch.gone:
        return
    sw.set_vars(ch, [("current_application", app), ("current_application_data", arg)])
    sw.emit(ch, "CHANNEL_EXECUTE", bottom=[("Application", app), ("Application-Data", arg),
                                           ("Application-UUID", app_uuid)])
    name = app.lower()
    if name == "answer" and not ch.answered:
        answer_leg(sw, ch)
    elif name == "hangup":
        ch.request_hangup(cause_from_text(arg or None))
    elif name == "set":
        var, _, value = arg.partition("=")
        if var:
            ch.variables.set(var.strip(), value or None)
    sw.emit(ch, "CHANNEL_EXECUTE_COMPLETE", bottom=[
        ("Application", app), ("Application-Data", arg), ("Application-Response", "_none_"),
        ("Application-UUID", app_uuid)])
