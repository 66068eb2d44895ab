"""Integration fixtures live in tests/conftest.py (shared with the e2e tests)."""
