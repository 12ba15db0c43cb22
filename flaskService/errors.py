"""One error type for the API and one handler that turns every error into the same JSON shape.

Every error the service answers with, whether raised by the image core (`ImageError`), by the HTTP
layer (`ApiError`, an `ImageError` that may carry headers), by Werkzeug (404, 405, 413, ...) or by a
bug (500), leaves as::

    {"error": "<message a person understands>", "code": "<machine reason>", "status": N}
"""
import logging

from flask import g, jsonify
from gunicorn.http.errors import ParseException as BodyParseError
from werkzeug.exceptions import HTTPException

from .digits.errors import ImageError

log = logging.getLogger(__name__)


class ApiError(ImageError):
    """An error a client caused (or, for 503, should retry): carries status, code, message and any
    headers the status calls for (WWW-Authenticate on 401, ...). A subclass of the image core's
    `ImageError`, so one handler answers both."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(status, code, message)
        self.headers = headers or {}


# Werkzeug's own exceptions carry only a status; give each a stable machine code.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    431: "headers_too_large",
}


def error_body(status, code, message):
    g.error_code = code  # for the error counter (metrics.py), without parsing the body back
    return {"error": message, "code": code, "status": status}


def _api_error(e):
    return error_body(e.status, e.code, e.message), e.status, getattr(e, "headers", {})


def _http_error(e):
    """Keep Werkzeug's status and headers (Allow on 405, ...), swap the HTML body for JSON."""
    message = e.description
    if e.code == 413:
        message = "The request is larger than this server accepts (MAX_CONTENT_LENGTH, MAX_FORM_PARTS)."
    response = jsonify(error_body(e.code, _HTTP_CODES.get(e.code, "http_error"), message))
    response.status_code = e.code
    for name, value in e.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def _malformed_body(e):
    # gunicorn parses a chunked body only as the app reads it, and raises its own errors, which
    # Werkzeug does not turn into a 400 as it does a read that fails with OSError.
    return error_body(400, "malformed_body", "The request body's chunked encoding is malformed."), 400


def _unhandled(e):
    # A bug, never the client's fault: log the traceback, answer without it.
    log.exception("unhandled error")
    body = error_body(500, "internal_error", "The server hit an internal error; it has been logged.")
    return body, 500


def register(app):
    app.register_error_handler(ImageError, _api_error)  # ApiError too: a subclass
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(BodyParseError, _malformed_body)
    app.register_error_handler(Exception, _unhandled)
