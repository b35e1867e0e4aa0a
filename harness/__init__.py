"""Private, throwaway test infrastructure that the test-suite and the benchmark both import.

* :mod:`harness.mariadb` - private MariaDB servers on loopback (start, stop, crash, restart, users, processlist).
* :mod:`harness.faultproxy` - a loopback TCP proxy that injects network faults (blackhole, delay, RST, cuts).
* :mod:`harness.tls` - a throwaway CA and certificates for TLS servers.
* :mod:`harness.runtime_api` - a loopback Lambda Runtime API (and the Extensions API's shutdown pieces) for
  Lambda's own runtime client, awslambdaric.

What is borrowed from mirakuru and port-for, and what is written by hand and why: see :mod:`harness.mariadb`.

Nothing here imports pytest, the library under test or anything from ``tests/``; ``bench/`` must not import ``tests/``
either (``tests/unit/test_bench_imports.py`` checks both).
"""
