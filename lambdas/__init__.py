"""Lambda functions. Each lives in its own package (``lambdas/<name>/``) with a thin ``handler.py``;
``lambdas/shared/`` holds what they share. A function's code archive contains this package root, so
handlers are addressed as ``lambdas.<name>.handler.handler``.
"""
