"""Health checker Lambda: see README.md in this directory."""
