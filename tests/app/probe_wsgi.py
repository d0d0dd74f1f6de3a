"""The real app (app.wsgi) plus two probe routes, for tests of gunicorn's behaviour in front of it.

``/test/scheme`` shows what gunicorn made of forwarded headers; ``/test/sleep?seconds=N`` is a slow request.
Served with app/gunicorn_conf.py: ``gunicorn --config app/gunicorn_conf.py tests.app.probe_wsgi:application``.
"""

from __future__ import annotations

import time

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from app.wsgi import application


@application.get("/test/scheme")
def scheme() -> ResponseReturnValue:
    return jsonify(scheme=request.scheme, script_root=request.script_root, path=request.path)


@application.get("/test/sleep")
def sleep() -> ResponseReturnValue:
    time.sleep(float(request.args["seconds"]))
    return jsonify(slept=True)
