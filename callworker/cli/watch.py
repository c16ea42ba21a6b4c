"""``callworker watch``: live events, as a table updated in place or one line per event.

The events come through a queue of its own (server-named, exclusive: it goes when the
watch does) bound to ``<tenant>.call.#``, ``<tenant>.hook.#`` and
``<tenant>.flashcall.#`` (any tenant without ``--tenant``), or to the one call of
``--call``. The table starts from the calls up when it begins: with ``--tenant`` it
asks ``call.list`` for each live status (``call.get`` with ``--call``), as any upstream
app may; the events after that keep it current.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rich.live import Live

from callworker.bus.upstream import Upstream
from callworker.cli.board import Board
from callworker.cli.common import EXIT_OK, add_amqp_option, add_tenant_option, amqp_url, console, print_json
from callworker.cli.show import event_line
from callworker.contract import utcnow

__all__ = ["add_watch_command", "bindings"]

_LIVE_STATUSES = ("initiated", "ringing", "answered", "on_hold")
_SEED_TIMEOUT_S = 5.0
_REDRAW_S = 0.5


def bindings(tenant: str | None, call_id: str | None) -> list[str]:
    """The routing keys the watch's queue is bound to on ``callworker.events``."""
    who = tenant or "*"
    if call_id:
        # Every event type is two words (call.answered, hook.<name>): <tenant>.<a>.<b>.<id>.
        return [f"{who}.*.*.{call_id}"]
    return [f"{who}.call.#", f"{who}.hook.#", f"{who}.flashcall.#"]


def _seed(upstream: Upstream, board: Board, tenant: str | None, call_id: str | None) -> None:
    """The calls already up, read through the contract; an error reply leaves the board to the events."""
    if tenant is None:
        return  # call.list is per tenant: across tenants only the events fill the table
    if call_id:
        reply = upstream.ask(tenant, "call.get", {"call_id": call_id}, _SEED_TIMEOUT_S)
        if reply and reply.get("ok") and isinstance(reply.get("result"), dict):
            board.seed(tenant, reply["result"])
        return
    for status in _LIVE_STATUSES:
        reply = upstream.ask(tenant, "call.list", {"status": status, "limit": 100}, _SEED_TIMEOUT_S)
        if reply and reply.get("ok") and isinstance(reply.get("result"), dict):
            for snapshot in reply["result"].get("calls") or []:
                board.seed(tenant, snapshot)


def _plain(upstream: Upstream, count: int | None, as_json: bool) -> int:
    board = Board(recent=1)  # only for its repeat check
    printed = 0
    while count is None or printed < count:
        event = upstream.next_event(1.0)
        if event is None or not board.apply(event):
            continue
        if as_json:
            print_json(event)
        else:
            print(event_line(event), flush=True)
        printed += 1
    return EXIT_OK


def _live(upstream: Upstream, args: argparse.Namespace) -> int:
    board = Board(recent=args.recent)
    _seed(upstream, board, args.tenant, args.call)
    with Live(board.render(utcnow()), console=console(), auto_refresh=False, transient=False) as live:
        next_draw = 0.0
        while args.count is None or board.events_seen < args.count:
            event = upstream.next_event(_REDRAW_S)
            changed = event is not None and board.apply(event)
            if changed or time.monotonic() >= next_draw:
                # The durations tick even when nothing happens.
                live.update(board.render(utcnow()), refresh=True)
                next_draw = time.monotonic() + _REDRAW_S
    return EXIT_OK


def run_watch(args: argparse.Namespace) -> int:
    keys = bindings(args.tenant, args.call)
    plain = args.plain or args.json or not sys.stdout.isatty()
    with Upstream(amqp_url(args), bindings=keys) as upstream:
        # On stderr, so pipes get events only; it also says the queue is bound.
        print(f"watching {' '.join(keys)} (Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            return _plain(upstream, args.count, args.json) if plain else _live(upstream, args)
        except KeyboardInterrupt:
            return EXIT_OK  # the way a watch is meant to end


def add_watch_command(commands: Any) -> None:
    p = commands.add_parser("watch", help="live events: the calls up now and the latest events")
    add_tenant_option(p, required=False)
    p.add_argument("--call", metavar="CALL_ID", help="only this call's events")
    p.add_argument("--plain", action="store_true",
                   help="one line per event instead of the table (implied when stdout is not a terminal)")
    p.add_argument("--json", action="store_true", help="each event as a JSON line, as published")
    p.add_argument("--count", type=int, metavar="N", help="stop after N events")
    p.add_argument("--recent", type=int, default=12, metavar="N", help="events under the table (default 12)")
    add_amqp_option(p)
    p.set_defaults(func=run_watch, quiet_logs=True)
