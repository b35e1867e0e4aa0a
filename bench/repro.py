"""Small, single-process reproductions of behaviours the benchmark found (``python -m bench.repro --help``).

``restart-herd``: ``--envs`` warm ``@with_mysql`` environments, the server SIGKILLed, every environment invoked
during the outage with a fresh 6 s context, the server restarted after ``--down`` seconds. Prints how the
invocations ended and how long they took.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from collections import Counter
from typing import Any

from bench.fleet import FakeContext
from bench.strategies import PYMYSQL_CONNECT_ARGS, error_key, load_with_mysql
from harness.mariadb import MariaDBServer


def _handlers(user: Any, n: int, **options: Any) -> list[Any]:
    wm = load_with_mysql()

    def handler(event: Any, context: Any, db: Any) -> Any:
        return db.query("SELECT SLEEP(0.04)")

    return [
        wm(**user.connect_kwargs(), connect_args=dict(PYMYSQL_CONNECT_ARGS), sigterm=False, **options)(handler)
        for _ in range(n)
    ]


def restart_herd(envs: int, down: float, timeout: float) -> None:
    with MariaDBServer(max_connections=90) as server:
        user = server.create_user()
        handlers = _handlers(user, envs)
        for h in handlers[:80]:
            h({}, FakeContext(timeout))  # some warm environments with a connection each
        server.crash()
        results: list[tuple[float, str]] = []
        lock = threading.Lock()

        def run(h: Any) -> None:
            t = time.monotonic()
            try:
                h({}, FakeContext(timeout))
                outcome = "ok"
            except Exception as exc:
                outcome = error_key(exc)
            with lock:
                results.append((time.monotonic() - t, outcome))

        threads = [threading.Thread(target=run, args=(h,)) for h in handlers]
        for t in threads:
            t.start()
        time.sleep(down)
        t0 = time.monotonic()
        server.start()
        print(f"server down {down:g} s, back up after a {time.monotonic() - t0:.2f} s start")
        for t in threads:
            t.join(timeout + 5)
        durations = sorted(d for d, _ in results)
        print(f"{envs} invocations with a {timeout:g} s context, all started during the outage:")
        for outcome, n in Counter(o for _, o in results).most_common():
            print(f"  {n:5d}  {outcome}")
        median = durations[len(durations) // 2]
        print(f"  duration min {durations[0]:.2f} s, median {median:.2f} s, max {durations[-1]:.2f} s")
        stats = [h.db.get_stats() for h in handlers]
        print(f"  connect attempts {sum(s.connect_attempts for s in stats)}, connects {sum(s.connects for s in stats)}")
        for h in handlers:
            with contextlib.suppress(Exception):
                h.db.terminate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.repro", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    herd = sub.add_parser("restart-herd", help="retrying through an outage, then the restart")
    herd.add_argument("--envs", type=int, default=300)
    herd.add_argument("--down", type=float, default=3.0)
    herd.add_argument("--timeout", type=float, default=6.0)
    args = parser.parse_args(argv)
    restart_herd(min(args.envs, 1000), args.down, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
