"""Auto-confirm job: confirms orders whose client did not act within the deadline (see core.py)."""
