"""The ``callworker`` command: the worker, and the operator's tools that speak to it.

Worker: run, migrate, simulate, demo. Operator: call, watch, cdr, stats.

gevent must patch the standard library before anything imports socket, ssl or
psycopg (psycopg picks its wait function at import), so it happens here, first.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402

from callworker.cli.call import add_call_commands  # noqa: E402
from callworker.cli.cdr import add_cdr_commands  # noqa: E402
from callworker.cli.common import (  # noqa: E402
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
)
from callworker.cli.stats import add_stats_command  # noqa: E402
from callworker.cli.watch import add_watch_command  # noqa: E402
from callworker.cli.worker import add_worker_commands  # noqa: E402
from callworker.errors import BrokerUnavailable, ConfigError, PublishFailed, StoreUnavailable  # noqa: E402

__all__ = ["EXIT_CONFIG", "main"]

# Exit status of a configuration the command refuses to run with (as argparse's usage errors).
EXIT_CONFIG = EXIT_USAGE


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _quiet_libraries() -> None:
    for noisy in ("pika", "greenswitch", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def _pika_silenced() -> Iterator[None]:
    """pika logs each failed connection step with a traceback; the tools say it in one line.

    Restored afterwards, so a caller running main() in-process keeps its own logging.
    """
    pika_log = logging.getLogger("pika")
    level = pika_log.level
    pika_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        pika_log.setLevel(level)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callworker", description=__doc__.split("\n")[0])
    parser.add_argument("--log-level", default=None, help="default INFO; WARNING for the operator's tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_worker_commands(sub)
    add_call_commands(sub)
    add_watch_command(sub)
    add_cdr_commands(sub)
    add_stats_command(sub)
    return parser


def _fail(message: str, status: int) -> int:
    # An operator's situation, not a bug: one line, no traceback.
    print(f"callworker: {message}", file=sys.stderr, flush=True)
    return status


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "quiet_logs", False):
        # The operator's tools print what they were asked for; log lines would only mix in.
        _logging(args.log_level or "WARNING")
        with _pika_silenced():
            return int(args.func(args))
    _logging(args.log_level or "INFO")
    _quiet_libraries()
    return int(args.func(args))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ConfigError as error:
        return _fail(str(error), EXIT_CONFIG)
    except CliError as error:
        return _fail(str(error), error.status)
    except (BrokerUnavailable, PublishFailed, StoreUnavailable) as error:
        return _fail(str(error), EXIT_UNAVAILABLE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): stop quietly, and keep Python's
        # final flush of stdout from failing again on the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
