"""Optional API keys: with API_KEYS set, predicting (and sending a correction) needs a key; with
METRICS_API_KEYS set, /metrics does. The operator's feedback routes (export, delete) always need one
of ADMIN_API_KEYS, and are off (403) while none is set: they hand out what users uploaded.

A key arrives as `Authorization: Bearer <key>` or `X-API-Key: <key>`. Health, the page, the docs
and the OpenAPI document stay open, so probes, people and tooling need no secret.
"""
import hmac

from flask import current_app, request

from .errors import ApiError

# The views behind POST /predict, POST /read, POST /feedback and the Open Inference Protocol's infer
# routes, and GET /metrics.
PREDICT_ENDPOINTS = ("api.predict", "read.read", "v2.infer", "feedback.submit")
METRICS_ENDPOINT = "metrics.metrics"
ADMIN_ENDPOINTS = ("feedback.export", "feedback.delete")


def register(app):
    app.before_request(_require_key)


def _require_key():
    # The endpoint, not the path: a route added or moved later is protected by the view it serves.
    if request.endpoint in ADMIN_ENDPOINTS:
        return _require_admin_key()
    if request.method == "POST" and request.endpoint in PREDICT_ENDPOINTS:
        keys = current_app.config["API_KEYS"]
    elif request.endpoint == METRICS_ENDPOINT:
        keys = current_app.config["METRICS_API_KEYS"]
    else:
        return
    if not keys:
        return
    presented = _presented_key()
    if presented is None:
        raise _unauthorized("This endpoint needs an API key: send 'Authorization: Bearer <key>' or "
                            "'X-API-Key: <key>'.", None)
    if not _matches(presented, keys):
        raise _unauthorized("The API key is not valid.", "invalid_token")


def _require_admin_key():
    """401 without a key, 403 with one that is not an admin key. With no admin key configured the
    routes are off, 403 for everyone: there is no key that could open them, so asking for one
    (401) would mislead, and 404 would hide from the operator why a documented route fails."""
    keys = current_app.config["ADMIN_API_KEYS"]
    if not keys:
        raise ApiError(403, "admin_disabled", "This route is off: the server sets no ADMIN_API_KEYS.")
    presented = _presented_key()
    if presented is None:
        raise _unauthorized("This route needs an admin key: send 'Authorization: Bearer <key>' or "
                            "'X-API-Key: <key>'.", None)
    if not _matches(presented, keys):
        raise ApiError(403, "forbidden", "This key may not use this route (it is not one of ADMIN_API_KEYS).")


def _matches(presented, keys):
    # Compare against every key, without stopping at a match, so timing says nothing about which.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented, key.encode())
    return matched


def _presented_key():
    """The key the client sent, as its raw bytes (WSGI headers are latin-1 text), or None."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip().encode("latin-1")
    key = request.headers.get("X-API-Key", "").strip()
    return key.encode("latin-1") if key else None


def _unauthorized(message, error):
    # RFC 6750: say which scheme the server expects and, when a key was sent, why it is refused.
    challenge = 'Bearer realm="digits"' + (f', error="{error}"' if error else "")
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})
