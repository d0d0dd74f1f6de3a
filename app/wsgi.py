"""WSGI entry point: ``gunicorn --config app/gunicorn_conf.py app.wsgi:application``.

Settings are read here, at import, so a misconfigured container fails at boot (gunicorn exits non-zero
and the ECS deployment circuit breaker sees it) instead of answering requests half-configured.
"""

from __future__ import annotations

import logging
import os

from app import jsonlog
from app.config import Settings
from app.web import create_app

settings = Settings.from_env(os.environ)
jsonlog.configure(settings.log_level)
if settings.stack:
    # `STACK` on every line, so logs shipped to one place still say which stack wrote them.
    for _handler in logging.getLogger().handlers:
        _handler.addFilter(jsonlog.StaticFields(stack=settings.stack))
application = create_app(settings)
