"""The reference for publishing: raw pika, persistent messages, confirms, a window in flight.

Publishes ``--count`` copies of the body in ``--body-file`` to the events exchange
with routing keys shaped like the worker's, keeping ``--window`` publishes
unconfirmed at most (the worker's own window), as fast as the broker confirms.
A pika SelectConnection with no gevent: the plainest fast publisher pika offers.
Prints ``done <seconds>`` from the first publish to the last confirm.
"""

import argparse
import time
import uuid
from collections import OrderedDict
from typing import Any

import pika


class _Publisher:
    def __init__(self, args: argparse.Namespace, body: bytes) -> None:
        self.args = args
        self.body = body
        self.pending: OrderedDict[int, None] = OrderedDict()
        self.sent = self.confirmed = 0
        self.started = 0.0
        self.channel: Any = None
        self.connection = pika.SelectConnection(
            pika.URLParameters(args.url), on_open_callback=self._on_open,
            on_close_callback=lambda conn, _reason: conn.ioloop.stop())

    def _on_open(self, connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.confirm_delivery(self._on_confirm, callback=self._on_confirming)

    def _on_confirming(self, _frame: Any) -> None:
        self.started = time.monotonic()
        self._publish_more()

    def _publish_more(self) -> None:
        while self.sent < self.args.count and len(self.pending) < self.args.window:
            key = f"{self.args.tenant}.call.answered.{uuid.uuid4()}"
            props = pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                         message_id=str(uuid.uuid4()), timestamp=int(time.time()))
            self.channel.basic_publish(self.args.exchange, key, self.body, props)
            self.sent += 1
            self.pending[self.sent] = None  # delivery tags count from 1 on a confirm channel

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        before = len(self.pending)
        if method.multiple:
            while self.pending and next(iter(self.pending)) <= method.delivery_tag:
                self.pending.popitem(last=False)
        else:
            self.pending.pop(method.delivery_tag, None)
        self.confirmed += before - len(self.pending)
        if self.confirmed >= self.args.count:
            print(f"done {time.monotonic() - self.started:.3f}", flush=True)
            self.connection.close()
        else:
            self._publish_more()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--exchange", required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--window", type=int, default=1000)
    args = parser.parse_args()
    with open(args.body_file, "rb") as handle:
        body = handle.read()
    _Publisher(args, body).connection.ioloop.start()


if __name__ == "__main__":
    main()
