"""Restore validation: checks that a restored database holds the marketplace (see core.py)."""
