"""The API container: health endpoints, configuration, JSON logs, the schema and its migration runner.

Importing this package imports nothing heavy, so ``python -m app.migrate`` does not load Flask.
"""
