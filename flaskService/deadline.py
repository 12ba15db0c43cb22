"""The time one request may work: REQUEST_TIMEOUT seconds from its start.

gunicorn's `timeout` is a heartbeat, not a limit on a request, and nginx gives up at 25 s while the
worker goes on. So the work checks its deadline between images (and between the reader's calls
into the model) and, once past it, stops and answers 503 deadline_exceeded.
"""
import time

from flask import current_app, g

from .errors import ApiError


def register(app):
    app.before_request(_start)


def _start():
    g.deadline = time.monotonic() + current_app.config["REQUEST_TIMEOUT"]


def check():
    """Raise 503 deadline_exceeded if this request is past its deadline."""
    if time.monotonic() > g.deadline:
        limit = current_app.config["REQUEST_TIMEOUT"]
        raise ApiError(503, "deadline_exceeded",
                       f"The request took longer than {limit:g} s (REQUEST_TIMEOUT) and was stopped; "
                       f"send fewer or smaller images.")


def checked(function):
    """`function`, checking the deadline before each call."""
    def call(*args):
        check()
        return function(*args)
    return call
