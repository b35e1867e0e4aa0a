"""Test-support code shared by the test-suite and the benchmark (importable as ``tests.support``)."""
