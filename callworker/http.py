"""GET /healthz and GET /metrics on a small gevent WSGI server, and any routes added (the dashboard).

No access log: a dashboard URL carries its token in the query string."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from gevent.pywsgi import WSGIServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["HttpServer"]

log = logging.getLogger("callworker.http")

Health = Callable[[], tuple[bool, dict[str, Any]]]
# More paths: answers a request, or None when the path is not its own.
Routes = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes] | None]


class HttpServer:
    def __init__(self, host: str, port: int, *, health: Health, registry: CollectorRegistry,
                 routes: Routes | None = None) -> None:
        self._health = health
        self._routes = routes
        self._registry = registry
        self._server = WSGIServer((host, port), self._app, log=None, error_log=log)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop(timeout=1)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "GET":
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
            return [b"method not allowed\n"]
        if path == "/healthz":
            ok, body = self._health()
            data = json.dumps(body, sort_keys=True).encode()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]
        if path == "/metrics":
            data = generate_latest(self._registry)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(data)))])
            return [data]
        if self._routes is not None:
            answer = self._routes(environ, start_response)
            if answer is not None:
                return answer
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
