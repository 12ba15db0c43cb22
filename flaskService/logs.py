"""Request ids and the access log: one JSON line per request on stdout, for any log collector.

    {"time":"2026-11-24T22:40:01.123Z","request_id":"9f0c...","method":"POST","path":"/predict",
     "status":200,"duration_ms":3.2,"pid":4242,"digit":7}

"pid" is the worker that answered: how requests spread over gunicorn's workers shows in the log.

A request that read several images carries "batch_size" instead of "digit". Every response
carries X-Request-ID: the caller's, if it is a sane token (so a proxy's id follows the request
through), else a new one.
"""
import os
import re
import sys
import time
import uuid
from datetime import datetime, timezone

import orjson
from flask import g, request

HEADER = "X-Request-ID"
# Ids end up in log lines and response headers: no spaces, quotes or control characters.
SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

def _write_line(line):
    """One access line on stdout, as it is when the line is written (test runners swap sys.stdout for
    each test). Written directly, not through a logger: logging's record, formatter and handler cost
    ~0.09 ms per request, a tenth of a 28x28 upload's CPU (measured in-process with thread_time).
    One write per line, flushed, so a crash loses no line and lines from two threads never mix."""
    stream = sys.stdout
    stream.write(line)
    stream.flush()


def _start():
    g.request_started = time.perf_counter()
    supplied = request.headers.get(HEADER, "")
    g.request_id = supplied if SANE_ID.fullmatch(supplied) else uuid.uuid4().hex


def _finish(response):
    started = g.get("request_started", time.perf_counter())
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers[HEADER] = request_id
    current = request._get_current_object()  # not the thread-local proxy, on every request
    line = {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": request_id,
        "method": current.method,
        "path": current.path,
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "pid": os.getpid(),
    }
    digits = g.get("digits")
    if digits is not None:
        if len(digits) == 1:
            line["digit"] = digits[0]
        else:
            line["batch_size"] = len(digits)
    _write_line(orjson.dumps(line).decode() + "\n")
    return response


def register(app):
    # First of all before_request hooks, so the id and the clock exist even for a request that
    # another hook (an API key check, say) turns away.
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)
