"""A FreeSWITCH stand-in (demo, load and fault tests): the inbound event socket, and
inbound calls handed over by the dialplan's ``socket`` app (outbound mode).

It reuses the ESL codec for every byte it reads or writes and imports nothing of
the worker's service, store or bus.
"""

from callworker.simulator.server import Simulator
from callworker.simulator.switch import Stats

__all__ = ["Simulator", "Stats"]
