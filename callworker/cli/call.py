"""``callworker call ...``: one contract command published as an upstream app would, its reply printed.

With ``--wait`` the call's events follow, through the terminal one and the CDR the
worker stores with it. The event queue is bound before the command is published
(the client chooses the call ids), so no event of the call can be missed.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from typing import Any

from callworker.bus.upstream import Upstream
from callworker.cli.common import (
    EXIT_ERROR_REPLY,
    EXIT_NO_REPLY,
    EXIT_OK,
    CliError,
    add_amqp_option,
    add_tenant_option,
    amqp_url,
    print_json,
    seconds_from_now,
    show,
    timestamp,
)
from callworker.cli.show import calls_table, error_lines, event_line, result_lines
from callworker.contract import TERMINAL_STATUSES, CallStatus, to_iso

__all__ = ["add_call_commands"]

_CALL_STATUSES = tuple(status.value for status in CallStatus)


# ------------------------------------------------------------------ fields of each command


def _connect(args: argparse.Namespace) -> dict[str, Any] | None:
    """``connect`` from --to-number / --to-extension (CONTRACT section 3), or None for the default."""
    if args.to_number:
        connect: dict[str, Any] = {"to": "number", "destination_number": args.to_number}
        optional = {
            "caller_id_number": args.connect_caller_id_number, "caller_id_name": args.connect_caller_id_name,
            "gateway": args.connect_gateway, "timeout_s": args.connect_ring_timeout,
            "call_id": args.connect_call_id,
        }
        connect.update({key: value for key, value in optional.items() if value is not None})
        return connect
    if args.to_extension:
        connect = {"to": "extension", "extension": args.to_extension}
        if args.context:
            connect["context"] = args.context
        return connect
    if getattr(args, "to_park", False):
        return {"to": "park"}
    return None


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The command's fields from the options; unset ones are left out (the worker's defaults apply)."""
    kind = args.call_command
    fields: dict[str, Any] = {}
    if kind == "originate":
        fields = {
            "destination_number": args.destination_number, "caller_id_number": args.caller_id_number,
            "caller_id_name": args.caller_id_name, "call_id": args.call_id, "timeout_s": args.ring_timeout,
            "gateway": args.gateway, "max_duration_s": args.max_duration, "connect": _connect(args),
        }
        if args.privacy:
            fields["privacy"] = True
    elif kind == "hangup":
        fields = {"call_id": args.call_id, "cause": args.cause}
    elif kind == "hold":
        fields = {"call_id": args.call_id, "hold": not args.resume}
    elif kind == "mute":
        fields = {"call_id": args.call_id, "muted": not args.unmute}
    elif kind == "transfer":
        fields = {"call_id": args.call_id, "connect": _connect(args)}
    elif kind == "get":
        fields = {"call_id": args.call_id}
    elif kind == "list":
        fields = {
            "from": to_iso(args.from_) if args.from_ else None, "to": to_iso(args.to) if args.to else None,
            "status": args.status, "limit": args.limit, "offset": args.offset,
        }
    fields["user_id"] = args.user_id
    if args.expires_in is not None:
        fields["expires_at"] = to_iso(seconds_from_now(args.expires_in))
    return {key: value for key, value in fields.items() if value is not None}


_TYPES = {"get": "call.get", "list": "call.list"}


# ------------------------------------------------------------------ running one


def _print_reply(command_type: str, reply: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print_json(reply)
    elif reply.get("ok") is True:
        result = reply.get("result") if isinstance(reply.get("result"), dict) else {}
        assert isinstance(result, dict)
        if command_type == "call.list" and isinstance(result.get("calls"), list):
            more = " (more: raise --offset)" if result.get("has_more") else ""
            show(calls_table(result["calls"]), f"{len(result['calls'])} of {result.get('total_count')}{more}")
        else:
            print("\n".join(result_lines(command_type, result)), flush=True)
    if reply.get("ok") is True:
        return EXIT_OK
    if not as_json:
        print("\n".join(error_lines(reply)), file=sys.stderr, flush=True)
    return EXIT_ERROR_REPLY


def _follow(upstream: Upstream, calls: tuple[str, str | None], timeout: float | None, as_json: bool) -> int:
    """Print the events of the call (and of its connect call) until each has ended and has its CDR.

    The connect call of ``--to-number`` exists only once the first call is answered:
    it is waited for only once an event of it has been seen. EXIT_NO_REPLY on the deadline.
    """
    call_id, connect_call_id = calls
    deadline = None if timeout is None else time.monotonic() + timeout
    pending, seen = {call_id}, set()
    while pending:
        remaining = 1.0 if deadline is None else deadline - time.monotonic()
        event = upstream.next_event(remaining) if remaining > 0 else None
        if event is None:
            if deadline is not None and time.monotonic() >= deadline:
                print(f"callworker: the call had not ended after {timeout:g} s", file=sys.stderr, flush=True)
                return EXIT_NO_REPLY
            continue
        if event.get("event_id") in seen:
            continue  # at-least-once delivery: a repeat is not news
        seen.add(event.get("event_id"))
        if as_json:
            print_json(event)
        else:
            print(event_line(event), flush=True)
        subject = str(event.get("call_id"))
        if event.get("type") == "call.cdr":
            pending.discard(subject)
        elif subject == connect_call_id and event.get("type") == "call.initiated":
            pending.add(subject)
    return EXIT_OK


def _followed_calls(args: argparse.Namespace, fields: dict[str, Any]) -> tuple[str, str | None]:
    """The call ids --wait follows: the call's and its connect call's, chosen here when not given.

    The client chooses them, so the event queue can be bound to them before publishing.
    """
    if args.call_command == "originate" and "call_id" not in fields:
        fields["call_id"] = str(uuid.uuid4())
    connect = fields.get("connect")
    if not (isinstance(connect, dict) and connect.get("to") == "number"):
        return str(fields["call_id"]), None
    connect.setdefault("call_id", str(uuid.uuid4()))
    return str(fields["call_id"]), str(connect["call_id"])


def run_call(args: argparse.Namespace) -> int:
    command_type = _TYPES.get(args.call_command, args.call_command)
    fields = _fields(args)
    wait = getattr(args, "wait", False)
    follow = _followed_calls(args, fields) if wait else None
    bindings = [f"{args.tenant}.*.*.{call_id}" for call_id in (follow or ()) if call_id]
    with Upstream(amqp_url(args), bindings=bindings) as upstream:
        _body, correlation_id = upstream.send(args.tenant, command_type, fields, command_id=args.command_id)
        reply = upstream.reply(correlation_id, args.reply_timeout)
        if reply is None:
            raise CliError(f"no reply to {command_type} within {args.reply_timeout:g} s: is a worker running?",
                           EXIT_NO_REPLY)
        status = _print_reply(command_type, reply, args.json)
        result = reply.get("result")
        ended = isinstance(result, dict) and result.get("status") in TERMINAL_STATUSES
        if status != EXIT_OK or follow is None or ended:
            return status  # an ended call has published its events already
        try:
            return _follow(upstream, follow, args.wait_timeout, args.json)
        except KeyboardInterrupt:
            print("callworker: stopped waiting; the call goes on", file=sys.stderr, flush=True)
            raise


# ------------------------------------------------------------------ options


def _common(parser: argparse.ArgumentParser, *, waitable: bool) -> None:
    add_tenant_option(parser, required=True)
    add_amqp_option(parser)
    parser.add_argument("--user-id", help="the tenant's own user who asks (limits, privacy, call list filter)")
    parser.add_argument("--command-id", help="the idempotency key (default: a new UUID); repeat one to retry safely")
    parser.add_argument("--expires-in", type=float, metavar="S", help="not executed when it reaches the worker later")
    parser.add_argument("--reply-timeout", type=float, default=10.0, metavar="S",
                        help="give up waiting for the reply after S seconds (default 10; exit status 3)")
    parser.add_argument("--json", action="store_true", help="print the raw reply (and events) as JSON lines")
    if waitable:
        parser.add_argument("--wait", action="store_true",
                            help="then print the call's events until it ends and its CDR is stored")
        parser.add_argument("--wait-timeout", type=float, default=None, metavar="S",
                            help="with --wait: give up after S seconds (exit status 3; default: no limit)")


def _connect_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    target = parser.add_mutually_exclusive_group(required=required)
    target.add_argument("--to-number", metavar="NUMBER", help="connect to a second call to NUMBER, bridged")
    target.add_argument("--to-extension", metavar="EXT", help="hand the call to the dialplan at EXT")
    if not required:
        target.add_argument("--to-park", action="store_true", help="park the answered call (the default)")
    parser.add_argument("--context", help="with --to-extension: one of the configured dialplan contexts")
    parser.add_argument("--connect-caller-id-number", metavar="NUMBER", help="with --to-number")
    parser.add_argument("--connect-caller-id-name", metavar="NAME", help="with --to-number")
    parser.add_argument("--connect-gateway", metavar="NAME", help="with --to-number")
    parser.add_argument("--connect-ring-timeout", type=int, metavar="S", help="with --to-number (5-120)")
    parser.add_argument("--connect-call-id", metavar="UUID", help="with --to-number: the second call's id")


def _add_originate(sub: Any) -> None:
    p = sub.add_parser("originate", help="place an outbound call")
    p.add_argument("destination_number", metavar="NUMBER")
    p.add_argument("--caller-id-number", metavar="NUMBER")
    p.add_argument("--caller-id-name", metavar="NAME")
    p.add_argument("--privacy", action="store_true", help="hide the caller's identity")
    p.add_argument("--call-id", metavar="UUID", help="the call's id (default: a new UUID)")
    p.add_argument("--ring-timeout", type=int, metavar="S", help="ring for at most S seconds (5-120, default 30)")
    p.add_argument("--gateway", metavar="NAME", help="a configured gateway")
    p.add_argument("--max-duration", type=int, metavar="S", help="end the answered call after S seconds")
    _connect_options(p, required=False)
    _common(p, waitable=True)


def _add_call_id_command(sub: Any, name: str, help_: str, *, waitable: bool) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_)
    p.add_argument("call_id", metavar="CALL_ID")
    _common(p, waitable=waitable)
    return p


def add_call_commands(commands: Any) -> None:
    """``call`` and its subcommands on the top-level subparsers."""
    group = commands.add_parser("call", help="publish one call command and print the reply")
    sub = group.add_subparsers(dest="call_command", required=True, metavar="COMMAND")
    _add_originate(sub)
    hangup = _add_call_id_command(sub, "hangup", "hang a call up", waitable=True)
    hangup.add_argument("--cause", help="a FreeSWITCH hangup cause (default NORMAL_CLEARING)")
    hold = _add_call_id_command(sub, "hold", "put an answered call on hold", waitable=False)
    hold.add_argument("--resume", action="store_true", help="take it off hold")
    mute = _add_call_id_command(sub, "mute", "mute an answered call", waitable=False)
    mute.add_argument("--unmute", action="store_true", help="unmute it")
    transfer = _add_call_id_command(sub, "transfer", "connect an answered call elsewhere", waitable=True)
    _connect_options(transfer, required=True)
    _add_call_id_command(sub, "get", "show one call", waitable=False)
    listing = sub.add_parser("list", help="list calls, newest first")
    listing.add_argument("--from", dest="from_", type=timestamp, metavar="TIME", help="initiated at or after")
    listing.add_argument("--to", type=timestamp, metavar="TIME", help="initiated before")
    listing.add_argument("--status", choices=_CALL_STATUSES)
    listing.add_argument("--limit", type=int, help="1-100 (default 50)")
    listing.add_argument("--offset", type=int)
    _common(listing, waitable=False)
    group.set_defaults(func=run_call, quiet_logs=True)
