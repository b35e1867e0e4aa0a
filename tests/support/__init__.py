"""Test-only helpers (fake servers, the SnapStart stand-in); what the benchmark shares is in ``harness/``."""
