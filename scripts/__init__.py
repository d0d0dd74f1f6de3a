"""Operator scripts (run as `python scripts/<name>.py`; importable for tests)."""
