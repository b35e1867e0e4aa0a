"""Private, throwaway test infrastructure that the test-suite and the benchmark both import.

* :mod:`harness.mariadb` - private MariaDB servers on loopback (start, stop, crash, restart, users, processlist).
* :mod:`harness.faultproxy` - a loopback TCP proxy that injects network faults (blackhole, delay, RST, cuts).
* :mod:`harness.tls` - a throwaway CA and certificates for TLS servers.
* :mod:`harness.runtime_api` - a loopback Lambda Runtime API (and the Extensions API's shutdown pieces) for
  Lambda's own runtime client, awslambdaric.
* :mod:`harness.cluster` - a local Aurora stand-in: a writer and GTID replicas, switchable cluster and reader
  endpoints, demotion and crash failovers (issue 17's drill).
* :mod:`harness.forwarder` - the endpoints as asyncio forwarders in a process of their own (the benchmark's load).

What is borrowed from mirakuru and port-for, and what is written by hand and why: see :mod:`harness.mariadb`.

Nothing here imports pytest, the library under test or anything from ``tests/``; ``bench/`` must not import ``tests/``
either (``tests/unit/test_bench_imports.py`` checks both).
"""
