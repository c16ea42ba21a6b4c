"""Persistence: SQLAlchemy models, engines, migrations, queries, batch writes and the outbox.

Knows neither RabbitMQ nor FreeSWITCH. Every public function takes an Engine and
raises StoreUnavailable when the database cannot be reached; IntegrityError and
DataError from SQLAlchemy propagate unchanged.
"""

from callworker.store.db import make_engine, normalise_url, ping
from callworker.store.export import count_cdrs, iter_cdrs, open_existing
from callworker.store.flashcall import (
    OrderHistory,
    get_order,
    latest_order_for_phone,
    live_orders,
    order_history,
)
from callworker.store.migrate import migrate, migrate_engine
from callworker.store.models import TERMINAL_STATUSES, utcnow
from callworker.store.queries import (
    CommandLookup,
    call_events,
    call_id_taken,
    get_call,
    get_cdr,
    get_command,
    list_calls,
    list_cdrs,
    live_calls,
    live_calls_by_id,
    lookup_command,
    pending_outbox,
    subject_events,
)
from callworker.store.writes import Batch, batch_stored, delete_outbox, write_batch

__all__ = [
    "Batch",
    "CommandLookup",
    "OrderHistory",
    "TERMINAL_STATUSES",
    "batch_stored",
    "call_events",
    "call_id_taken",
    "count_cdrs",
    "delete_outbox",
    "get_call",
    "get_cdr",
    "get_command",
    "get_order",
    "iter_cdrs",
    "latest_order_for_phone",
    "list_calls",
    "list_cdrs",
    "live_calls",
    "live_calls_by_id",
    "live_orders",
    "lookup_command",
    "make_engine",
    "migrate",
    "migrate_engine",
    "normalise_url",
    "open_existing",
    "order_history",
    "pending_outbox",
    "ping",
    "subject_events",
    "utcnow",
    "write_batch",
]
