"""A FreeSWITCH stand-in speaking the inbound event socket (demo, load and fault tests).

It reuses the ESL codec for every byte it reads or writes and imports nothing of
the worker's service, store or bus.
"""

from callworker.simulator.server import Simulator
from callworker.simulator.switch import Stats

__all__ = ["Simulator", "Stats"]
