"""The operator's live page: ``GET /dashboard``, ``/api/events`` (server-sent events) and ``/api/stats``."""

from callworker.dashboard.auth import Viewer, viewer_for
from callworker.dashboard.routes import Dashboard

__all__ = ["Dashboard", "Viewer", "viewer_for"]
