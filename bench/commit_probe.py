"""A witness of the machine's own commit latency while a figure runs.

Commits one single-row insert (its own transaction, so one WAL flush) every
``--interval`` seconds into a table of its own in ``--url``'s database, until
terminated; then prints the latencies' p50, p99 and max as one JSON line. A
stall of the disk under PostgreSQL shows here as it shows in the worker's
commits: any durable reply waits for it.
"""

import argparse
import json
import signal
import time

import psycopg


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    latencies: list[float] = []
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_commit_probe (at double precision)")
        print("ready", flush=True)
        while not stop:
            started = time.perf_counter()
            conn.execute("INSERT INTO bench_commit_probe VALUES (%s)", (started,))
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(args.interval)
    latencies.sort()
    n = len(latencies)
    print(json.dumps({"n": n, "p50": latencies[n // 2] if n else 0.0,
                      "p99": latencies[min(n - 1, int(n * 0.99))] if n else 0.0,
                      "max": latencies[-1] if n else 0.0}), flush=True)


if __name__ == "__main__":
    main()
