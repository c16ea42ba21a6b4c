"""The small interface through which business code uses FreeSWITCH.

The call service sees only this; the hardened ESL connection implements it,
and component tests implement it with a fake.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["FreeSwitchPort"]


class FreeSwitchPort(Protocol):
    """Commands to one FreeSWITCH node. Events arrive separately, on the owner's queue."""

    @property
    def connected(self) -> bool:
        """True while an authenticated, subscribed connection is up."""
        ...

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the connection; True once it is up."""
        ...

    def api(self, command: str, *, timeout: float | None = None) -> str:
        """Run ``api <command>`` and return the api/response body.

        Raises FreeSwitchUnavailable (or FreeSwitchTimeout) when no reply can come.
        """
        ...

    def bgapi(self, command: str, *, job_uuid: str | None = None, timeout: float | None = None) -> str:
        """Run ``bgapi <command>`` and return its Job-UUID; the outcome arrives as BACKGROUND_JOB."""
        ...
