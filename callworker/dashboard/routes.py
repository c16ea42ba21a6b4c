"""The dashboard's HTTP routes, on the worker's own HTTP server.

``GET /dashboard?token=`` the page; ``/dashboard/static/<file>`` its script and
style (no tenant data in them, so no token); ``/api/events?token=`` the live
stream; ``/api/stats?token=[&from&to&group_by]`` what ``stats.get`` answers;
``/api/mos?token=[&from&to]`` the MOS distribution. The operator's token may add
``&tenant=``. Without a valid token every route but the static files answers 401
with the same body; nothing a request carries (its token above all) is logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, TypeVar

from sqlalchemy import Engine

from callworker.contract import stats_window, to_iso, utcnow
from callworker.dashboard.auth import TokenBook, Viewer, query, viewer_for
from callworker.dashboard.live import EventStream, Subscription
from callworker.dashboard.picture import snapshot
from callworker.errors import BrokerUnavailable, StoreUnavailable
from callworker.store.dashboard import mos_distribution
from callworker.store.stats import GROUP_BY, call_stats

__all__ = ["Dashboard", "UNAUTHORIZED"]

log = logging.getLogger("callworker.dashboard")

StartResponse = Callable[..., Any]
UNAUTHORIZED = b'{"error": "a valid token is required"}\n'
_STATIC = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_COMMON = [
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
]
_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
D = TypeVar("D", datetime, None)
_LONGEST = timedelta(days=31)


class BadRequest(ValueError):
    """A parameter the route cannot use; its text is safe to send back."""


def _asset(name: str) -> bytes:
    return resources.files("callworker.dashboard").joinpath("static", name).read_bytes()


def _when(params: dict[str, str], name: str, default: D) -> datetime | D:
    raw = params.get(name)
    if not raw:
        return default
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+"))  # a '+' in a query string arrives as a space
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 time with an offset") from None
    if value.tzinfo is None:
        raise BadRequest(f"{name} must be an ISO 8601 time with an offset")
    return value.astimezone(UTC)


def window(params: dict[str, str], default: timedelta) -> tuple[datetime, datetime]:
    """``from`` and ``to`` of a request (``to`` now and ``from`` ``default`` before it when absent)."""
    to: datetime = _when(params, "to", utcnow())
    from_: datetime = _when(params, "from", to - default)
    if from_ >= to:
        raise BadRequest("from must be before to")
    if to - from_ > _LONGEST:
        raise BadRequest(f"to must be at most {_LONGEST.days} days after from")
    return from_, to


class Dashboard:
    """Answers the dashboard's paths; ``handle`` returns None for any other path."""

    def __init__(self, *, book: TokenBook, tenants: Callable[[], list[str]], engine: Engine,
                 subscribe: Callable[[str], Subscription], max_streams: int = 64) -> None:
        """``subscribe(binding)`` binds a new queue on ``callworker.events`` (BrokerUnavailable if it cannot)."""
        self._book = book
        self._tenants = tenants
        self._engine = engine
        self._subscribe = subscribe
        self._max_streams = max_streams
        self.streams = 0
        self._running = True

    def stop(self) -> None:
        """End every live stream (within half a second); new ones are refused."""
        self._running = False

    def handle(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes] | None:
        path = str(environ.get("PATH_INFO", ""))
        if path.startswith("/dashboard/static/"):
            return self._static(path.rsplit("/", 1)[-1], start_response)
        routes = {"/dashboard": self._page, "/api/events": self._events, "/api/stats": self._stats,
                  "/api/mos": self._mos}
        route = routes.get(path)
        if route is None:
            return None
        params = query(environ)
        viewer = viewer_for(self._book, params)
        if viewer is None:
            return _send(start_response, "401 Unauthorized", UNAUTHORIZED, "application/json")
        try:
            return route(viewer, params, start_response)
        except BadRequest as exc:
            return _json(start_response, "400 Bad Request", {"error": str(exc)})
        except (StoreUnavailable, BrokerUnavailable) as exc:
            log.warning("dashboard %s unavailable: %s", path, exc)
            return _json(start_response, "503 Service Unavailable", {"error": "temporarily unavailable"})
        except Exception:
            log.exception("dashboard %s failed", path)  # the path only: the query holds the token
            return _json(start_response, "500 Internal Server Error", {"error": "internal error"})

    # ------------------------------------------------------------------ routes

    def _static(self, name: str, start_response: StartResponse) -> Iterable[bytes]:
        kind = _STATIC.get(name)
        if kind is None:
            return _send(start_response, "404 Not Found", b"not found\n", "text/plain")
        return _send(start_response, "200 OK", _asset(name), kind)

    def _page(self, _viewer: Viewer, _params: dict[str, str], start_response: StartResponse) -> Iterable[bytes]:
        return _send(start_response, "200 OK", _asset("dashboard.html"), "text/html; charset=utf-8",
                     [("Content-Security-Policy", _PAGE_POLICY)])

    def _events(self, viewer: Viewer, params: dict[str, str], start_response: StartResponse) -> Iterable[bytes]:
        if self.streams >= self._max_streams or not self._running:
            return _json(start_response, "503 Service Unavailable", {"error": "too many live streams"})
        tenants = sorted(self._tenants()) if viewer.admin else []
        subscription = self._subscribe(viewer.binding)  # bound first: nothing falls between it and the snapshot
        try:
            first = snapshot(self._engine, viewer, tenants)
        except BaseException:
            subscription.close()
            raise
        stream = EventStream(subscription, first, still_allowed=lambda: viewer_for(self._book, params) == viewer,
                             running=lambda: self._running)
        start_response("200 OK", [("Content-Type", "text/event-stream; charset=utf-8"),
                                  ("X-Accel-Buffering", "no"), *_COMMON])
        return self._counted(stream)

    def _counted(self, stream: Iterable[bytes]) -> Iterable[bytes]:
        self.streams += 1
        try:
            yield from stream
        except Exception:
            log.exception("a dashboard event stream failed")  # not pywsgi's report: it prints the query
        finally:
            self.streams -= 1

    def _stats(self, viewer: Viewer, params: dict[str, str], start_response: StartResponse) -> Iterable[bytes]:
        """What ``stats.get`` answers (``admin.stats.get`` for the operator), same defaults and limits."""
        group_by = params.get("group_by") or "none"
        if group_by not in GROUP_BY:
            raise BadRequest("group_by must be one of " + ", ".join(GROUP_BY))
        from_ = _when(params, "from", None)
        to = _when(params, "to", None)
        try:
            start, end = stats_window(from_, to, group_by, utcnow())
        except ValueError as exc:
            raise BadRequest(f"to: {exc}") from None
        groups = call_stats(self._engine, tenant=viewer.tenant, from_=start, to=end, group_by=group_by)
        return _json(start_response, "200 OK",
                     {"from": to_iso(start), "to": to_iso(end), "group_by": group_by, "groups": groups})

    def _mos(self, viewer: Viewer, params: dict[str, str], start_response: StartResponse) -> Iterable[bytes]:
        from_, to = window(params, timedelta(hours=1))
        return _json(start_response, "200 OK", {"bands": mos_distribution(self._engine, viewer.tenant, from_, to)})


def _send(start_response: StartResponse, status: str, body: bytes, kind: str,
          extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body))), *_COMMON, *(extra or [])])
    return [body]


def _json(start_response: StartResponse, status: str, body: Any) -> list[bytes]:
    return _send(start_response, status, json.dumps(body, sort_keys=True).encode() + b"\n", "application/json")
