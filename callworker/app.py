"""Wiring: builds the worker's parts from Settings, starts them in order, stops them gracefully.

Start order: database (migrations, then the live calls of this node back into
memory), journal and relay (so everything committed gets published), the event
pump, the command pool, then the connections to FreeSWITCH and RabbitMQ, then
HTTP. Commands are consumed only while FreeSWITCH is connected, and after every
(re)connect only once the live calls have been reconciled with what FreeSWITCH
still has (tried again until it succeeds, see calls/resync.py); the flash calls
still up are then given back the drops that the restart or outage lost. FreeSWITCH
events the worker had to drop (esl/buffer.py) are repaired the same way, once the
backlog they were dropped from has been journalled.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
from prometheus_client import CollectorRegistry, Gauge

from callworker.bus.client import AmqpClient
from callworker.bus.relay import OutboxItem, OutboxRelay
from callworker.bus.upstream import Upstream
from callworker.calls.admin import AdminCommands
from callworker.calls.connect import CONNECT_EVENTS, CONNECT_FILTERS, CONNECT_SUBSCRIBED, Connector
from callworker.calls.fsevents import PRECIOUS_EVENTS, SUBSCRIBED_EVENTS, EventPump
from callworker.calls.hooks import HOOK_EVENTS, Hooks, hook_subscription
from callworker.calls.inbound import InboundCalls
from callworker.calls.intake import Intake
from callworker.calls.journal import Journal
from callworker.calls.media import Media
from callworker.calls.media_events import MEDIA_EVENTS, MediaEvents
from callworker.calls.privacy import Privacy
from callworker.calls.reconcile import reconcile
from callworker.calls.replay import EventReplay
from callworker.calls.resync import Reconciler
from callworker.calls.service import CallService
from callworker.calls.stats import StatsCommands
from callworker.config import Settings, mask_url
from callworker.dashboard import Dashboard
from callworker.errors import StoreUnavailable
from callworker.esl.buffer import EventBuffer
from callworker.esl.connection import EslConnection
from callworker.esl.outbound import OutboundServer
from callworker.esl.peers import allow_list
from callworker.flashcall import FlashcallService
from callworker.http import HttpServer
from callworker.policy import PolicyBook
from callworker.policy.limits import CallLimits
from callworker.store import delete_outbox, make_engine, migrate, pending_outbox, ping
from callworker.store.privacy import latest_erasure, privacy_key
from callworker.store.retention import Retention, Sweeper

__all__ = ["Worker"]

log = logging.getLogger("callworker")


class Worker:
    """One worker process bound to one FreeSWITCH node."""

    def __init__(self, settings: Settings) -> None:
        # Refuse a missing secret before anything is touched (database, sockets).
        settings.flashcall_key()
        self.settings = settings
        url = settings.database_url_value
        migrate(url)
        # Command greenlets, the journal, the relay, health and flash-call sweeps.
        self.engine = make_engine(url, pool_size=settings.command_workers + 16)
        self.policy = PolicyBook(self.engine, settings.policy_file)
        # Before anything runs: a policy file that cannot be used stops the start (ConfigError).
        self.policy.load()
        self.registry = CollectorRegistry()
        self.esl_events = EventBuffer(
            settings.esl_event_queue_size,
            int(settings.esl_event_overflow_mb * 1024 * 1024),
            precious=lambda event: event.name in PRECIOUS_EVENTS,
            on_loss=self._on_events_lost,
        )
        self.bus = AmqpClient(
            settings.amqp_url_value,
            node_id=settings.node_id,
            prefetch=settings.prefetch,
            on_delivery=self._on_delivery,
            max_unconfirmed=settings.publish_window,
        )
        self.relay = OutboxRelay(
            self.bus,
            fetch_pending=self._fetch_pending,
            mark_sent=self._mark_sent,
            window=settings.publish_window,
        )
        self.journal = Journal(
            self.engine,
            node=settings.node_id,
            notify=self.relay.notify,
            rescan=self.relay.rescan,
            batch_max=settings.write_batch_max,
            linger=settings.write_linger_ms / 1000,
            # Two batches ahead: a backlog of FreeSWITCH events waits in esl_events,
            # where it is bounded, counted and never holds up the ESL reader.
            queue_size=2 * settings.write_batch_max,
        )
        # ALL, narrowed by filters to the events used plus dialplan hooks (callworker::*).
        # A second call's events pass by its channel variable (CONNECT_FILTERS).
        events, filters = hook_subscription((*SUBSCRIBED_EVENTS, *CONNECT_SUBSCRIBED, *MEDIA_EVENTS))
        filters.extend(CONNECT_FILTERS)
        self.esl = EslConnection(
            settings.esl_host,
            settings.esl_port,
            settings.esl_password.get_secret_value(),
            events=events,
            filters=filters,
            event_format=settings.esl_event_format,
            event_queue=self.esl_events,
            send_timeout=settings.esl_send_timeout_s,
            connect_timeout=settings.esl_connect_timeout_s,
            on_connected=self._on_freeswitch_up,
            on_disconnected=self._on_freeswitch_down,
        )
        self.pump = EventPump(self.esl_events, self.journal)
        self.hooks = Hooks(self.journal)
        for name in HOOK_EVENTS:
            self.pump.on(name, self.hooks.handle)
        self.inbound = InboundCalls(
            journal=self.journal,
            node=settings.node_id,
            engine=self.engine,
            port=self.esl,
            settle_after_s=settings.inbound_settle_after_s,
        )
        # Who may hand calls over on the dialplan socket (any other peer is closed at once).
        self.socket_peers = allow_list(settings.socket_allow, settings.esl_host)
        self.socket_server = OutboundServer(
            settings.socket_host,
            settings.socket_port,
            allow=self.socket_peers.allows,
            on_session=self.inbound.on_session,
            on_session_end=self.inbound.on_session_end,
        )
        self.limits = CallLimits(self.policy, self.engine)
        self.journal.rates = self.policy.rates
        self.connector = Connector(
            journal=self.journal, port=self.esl, engine=self.engine, node=settings.node_id,
            gateways=settings.gateways, default_gateway=settings.default_gateway,
            contexts=settings.contexts, max_duration_s=settings.max_call_duration_s,
        )
        self.calls = CallService(
            journal=self.journal,
            port=self.esl,
            engine=self.engine,
            node=settings.node_id,
            gateways=settings.gateways,
            default_gateway=settings.default_gateway,
            limits=self.limits,
            connector=self.connector,
        )
        self.journal.observers.append(self.connector.on_call_event)
        for name in CONNECT_EVENTS:
            self.pump.on(name, self.connector.on_switch_event)
        self.flashcalls = FlashcallService(
            journal=self.journal,
            port=self.esl,
            engine=self.engine,
            bus=self.bus,
            settings=settings,
            limits=self.limits,
        )
        self.journal.observers.append(self.flashcalls.on_call_event)
        self.journal.reloaders.append(self.flashcalls.load)
        self.intake = Intake(
            bus=self.bus,
            engine=self.engine,
            service=self.calls,
            freeswitch_ready=self.esl.wait_connected,
            max_age_s=settings.command_max_age_s,
            workers=settings.command_workers,
            owner_of=self._owner_of,
            extra_handlers={
                "flashcall.create": self.flashcalls.create,
                "flashcall.verify": self.flashcalls.verify,
            },
        )
        self.media = Media(
            journal=self.journal, service=self.calls, engine=self.engine, node=settings.node_id,
            sounds_dir=settings.sounds_dir, recordings_dir=settings.recordings_dir,
        )
        self.media_events = MediaEvents(self.journal, self.media.state)
        for name in MEDIA_EVENTS:
            self.pump.on(name, self.media_events.handle)
        self.journal.enders.append(self.media_events.on_end)
        self.journal.reloaders.append(self.media.load)
        self.intake.add_handlers(self.media.handlers())
        self.admin = AdminCommands(journal=self.journal, policy=self.policy)
        self.intake.add_handlers(self.admin.handlers())
        self.intake.add_handlers(EventReplay(journal=self.journal, engine=self.engine).handlers())
        self.intake.add_handlers(StatsCommands(journal=self.journal, engine=self.engine).handlers())
        self.privacy = Privacy(
            journal=self.journal, engine=self.engine,
            key=privacy_key(settings.flashcall_key()),
            on_erased=lambda: self.limits.count_live(self.journal.calls.values()),
        )
        self.privacy.holders.append(self.flashcalls.privacy_holder())
        self.intake.add_handlers(self.privacy.handlers())
        self.retention = Sweeper(
            self.engine, Retention(days=settings.retention_days, command_days=settings.command_retention_days)
        )
        self._owners = [self.calls.owner_of, self.media.owner_of]
        self.reconciler = Reconciler(
            self._reconcile_once,
            connected=lambda: self.esl.connected,
            on_reconciled=self._take_commands,
        )
        self.dashboard = Dashboard(
            book=self.policy, tenants=lambda: list(self.policy.in_force.file.tenants),
            engine=self.engine,
            # Each page's own queue, bound with its tenant's routing keys: the broker filters.
            subscribe=lambda binding: Upstream(settings.amqp_url_value, bindings=[binding]),
        )
        self.http = HttpServer(settings.http_host, settings.http_port, health=self.health, registry=self.registry,
                               routes=self.dashboard.handle)
        self._metrics()

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        self.journal.load()
        self.limits.attach(self.journal)
        self.flashcalls.load()
        self.media.load()
        self.journal.start()
        self.policy.start()
        self.privacy.start(latest_erasure(self.engine))
        self.retention.start()
        self.flashcalls.start()
        self.relay.start()
        self.pump.start()
        self.intake.start()
        # Consuming starts only once FreeSWITCH is there (see _on_freeswitch_up).
        self.bus.pause_consuming()
        self.bus.start()
        self.esl.start()
        self.socket_peers.refresh()
        self.socket_server.start()
        self.http.start()
        log.info(
            "worker %s started: FreeSWITCH %s:%s, RabbitMQ %s, HTTP :%s, dialplan socket %s:%s for %s",
            self.settings.node_id,
            self.settings.esl_host,
            self.settings.esl_port,
            mask_url(self.settings.amqp_url_value),
            self.http.port,
            *self.socket_server.address,
            self.socket_peers.describe(),
        )

    def stop(self, timeout: float = 15.0) -> None:
        """Stop taking commands, finish those in hand, journal what FreeSWITCH said, flush, close."""
        self.bus.pause_consuming()
        self.dashboard.stop()
        # Closing the sockets ends the inbound calls; their hangups are still journalled.
        self.socket_server.stop()
        self.intake.drain(timeout / 3)
        self.intake.stop()
        self.reconciler.stop()
        self.policy.stop()
        self.privacy.stop()
        self.retention.stop()
        self.flashcalls.stop()
        self.inbound.stop()
        # No new FreeSWITCH events after this; the ones already read are journalled.
        self.esl.stop()
        self._drain_events(timeout / 6)
        self.pump.stop()
        self.journal.stop(timeout / 6)
        self.relay.stop(timeout / 6)
        self.bus.stop(timeout / 6)
        self.http.stop()
        self.engine.dispose()
        log.info("worker %s stopped", self.settings.node_id)

    def _drain_events(self, timeout: float) -> None:
        with gevent.Timeout(timeout, False):
            while not self.esl_events.empty():
                gevent.sleep(0.01)

    # ------------------------------------------------------------ callbacks

    def _owner_of(self, command: Any) -> str | None:
        for owner_of in self._owners:
            owner = owner_of(command)
            if owner is not None:
                return owner
        return None

    def _on_delivery(self, delivery: Any) -> None:
        self.intake.on_delivery(delivery)

    def _on_freeswitch_up(self) -> None:
        self.reconciler.on_connected()

    def _on_freeswitch_down(self) -> None:
        self.bus.pause_consuming()
        self.reconciler.on_disconnected()

    def _on_events_lost(self) -> None:
        # The backlog the events were dropped from is cleared: repair what they said.
        self.reconciler.request()

    def _reconcile_once(self) -> bool:
        """One reconciliation; true if it had live calls to compare (worth a second look)."""
        outcome = reconcile(self.journal, self.esl, in_flight=self.calls.dialling, engine=self.engine,
                            caught_up=self._caught_up)
        # Timers die with the process and hang-ups with an outage; the calls
        # reconciliation left live are the ones still to drop.
        self.flashcalls.rearm()
        self.connector.rearm()
        return outcome.checked > 0

    def _caught_up(self) -> None:
        """Until the events read so far have been handed to the journal."""
        self.pump.wait_taken(self.esl_events.accepted)

    def _take_commands(self) -> None:
        if self.esl.connected:
            self.bus.resume_consuming()

    def _fetch_pending(self, after_id: int, limit: int) -> list[OutboxItem]:
        return [
            OutboxItem(
                id=row["id"],
                exchange=row["exchange"],
                routing_key=row["routing_key"],
                body=bytes(row["body"]),
                message_id=row["message_id"],
                correlation_id=row["correlation_id"],
                headers=row["headers"],
            )
            for row in pending_outbox(self.engine, self.settings.node_id, after_id, limit)
        ]

    def _mark_sent(self, ids: list[int]) -> None:
        delete_outbox(self.engine, ids)

    # ---------------------------------------------------------------- health

    def health(self) -> tuple[bool, dict[str, Any]]:
        try:
            ping(self.engine)
            database = True
        except StoreUnavailable:
            database = False
        database = database and self.journal.healthy
        # Reconciled: no gap left unrepaired between the calls here and FreeSWITCH's.
        reconciled = self.reconciler.reconciled and not self.esl_events.losing
        body = {
            "node": self.settings.node_id,
            "freeswitch": {
                "connected": self.esl.connected,
                "reconciled": reconciled,
                "host": self.settings.esl_host,
                "port": self.settings.esl_port,
            },
            "rabbitmq": {"connected": self.bus.ready, "url": mask_url(self.settings.amqp_url_value)},
            "database": {"reachable": database},
            "live_calls": len(self.journal.calls),
            "outbox_backlog": self.relay.backlog,
        }
        ok = self.esl.connected and reconciled and self.bus.ready and database
        body["status"] = "ok" if ok else "degraded"
        return ok, body

    def _metrics(self) -> None:
        gauges = {
            "callworker_live_calls": ("Calls live on this node", lambda: len(self.journal.calls)),
            "callworker_outbox_backlog": ("Outbox rows not yet confirmed by RabbitMQ", lambda: self.relay.backlog),
            "callworker_freeswitch_connected": ("1 while the ESL connection is up", lambda: int(self.esl.connected)),
            "callworker_rabbitmq_connected": ("1 while RabbitMQ is ready", lambda: int(self.bus.ready)),
            "callworker_esl_event_queue": (
                "FreeSWITCH events waiting for the journal (queue and overflow)",
                lambda: self.esl_events.qsize(),
            ),
            "callworker_esl_event_overflow_events": (
                "FreeSWITCH events held beyond the queue", lambda: self.esl_events.overflow_events,
            ),
            "callworker_esl_event_overflow_bytes": (
                "Bytes of the events held beyond the queue", lambda: self.esl_events.overflow_bytes,
            ),
            "callworker_esl_event_overflow_peak_bytes": (
                "Most bytes ever held beyond the queue", lambda: self.esl_events.overflow_peak_bytes,
            ),
            "callworker_esl_events_overflowed": (
                "FreeSWITCH events that went through the overflow", lambda: self.esl_events.overflowed,
            ),
            "callworker_esl_events_dropped": (
                "FreeSWITCH events dropped past the overflow cap", lambda: self.esl_events.dropped,
            ),
            "callworker_esl_reply_timeouts": (
                "ESL commands whose reply did not come in time", lambda: self.esl.stats.timeouts,
            ),
            "callworker_esl_connects": ("ESL connections established", lambda: self.esl.stats.connects),
            "callworker_reconciliations": ("Reconciliations that succeeded", lambda: self.reconciler.succeeded),
            "callworker_reconciliations_failed": (
                "Reconciliation attempts that failed (each is tried again)", lambda: self.reconciler.failed,
            ),
            "callworker_journal_batches": ("Journal batches committed", lambda: self.journal.batches),
            "callworker_commands_handled": ("Command deliveries handled", lambda: self.intake.handled),
        }
        for name, (doc, read) in gauges.items():
            Gauge(name, doc, registry=self.registry).set_function(read)
