"""The reference for the command round trip: a bare pika responder, nothing else.

Consumes ``--queue`` and answers every message at once to its ``reply_to`` with the
given ``--reply-size`` bytes, echoing ``correlation_id``: the time an AMQP request
and reply cost on this broker with no work in between. Prints ``ready`` once
consuming; runs until terminated (its queue goes with it).
"""

import argparse

import pika


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--reply-size", type=int, default=200)
    args = parser.parse_args()
    reply = b'{"v": 1, "ok": true, "pad": "' + b"x" * max(0, args.reply_size - 30) + b'"}'
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    channel.queue_declare(args.queue, exclusive=True, auto_delete=True)

    def on_message(ch, _method, props, _body):  # type: ignore[no-untyped-def]
        ch.basic_publish("", props.reply_to, reply, pika.BasicProperties(
            content_type="application/json", delivery_mode=2, correlation_id=props.correlation_id))

    channel.basic_consume(args.queue, on_message, auto_ack=True)
    print("ready", flush=True)
    channel.start_consuming()  # until SIGTERM ends the process


if __name__ == "__main__":
    main()
