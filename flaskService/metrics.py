"""GET /metrics: Prometheus text format, summed over every gunicorn worker.

Each worker counts in its own memory-mapped files under PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py
creates and empties it before the workers start); a scrape, answered by any one worker, reads all
of them. Without that variable (tests, `flask run`) the process's own registry is served.

The metric objects live at module level because prometheus_client registers each name once per
process; an app built twice (as the tests do) must share them.
"""
import functools
import os
import time

from flask import Blueprint, Response, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)

bp = Blueprint("metrics", __name__)

# Milliseconds to seconds: one digit takes microseconds to infer, a 256-image upload much longer.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("http_requests_total", "HTTP requests answered, by route, method and status",
                   ("endpoint", "method", "status"))
REQUEST_SECONDS = Histogram("http_request_duration_seconds", "Time to answer a request, by route",
                            ("endpoint",), buckets=_BUCKETS)
STAGE_SECONDS = Histogram(
    "prediction_stage_duration_seconds",
    "Time per prediction request in each stage: preprocess (reading and decoding the body, "
    "preprocessing the images) and inference (the model)",
    ("stage",), buckets=_BUCKETS)
DIGITS = Counter("digit_predictions_total", "Digits read, by the digit the model answered", ("digit",))
ANSWERS = Counter("digit_answers_total", "Images answered, by whether they hold one digit and, if not, why not "
                  "(reason: not_a_digit, several_digits; none when is_digit is true)", ("is_digit", "reason"))
NUMBERS = Counter("number_readings_total", "Numbers read by POST /read, by how many digits they have (13 = 13 or more)",
                  ("length",))
ERRORS = Counter("api_errors_total", "Error responses, by the machine-readable code in their body", ("code",))
FEEDBACK = Counter("feedback_total",
                   "Corrections sent to POST /feedback, by outcome: stored; rejected (bad label or image); full "
                   "(FEEDBACK_MAX_ROWS or FEEDBACK_MAX_BYTES reached); unavailable (the database failed); disabled (FEEDBACK_DB=off)",
                   ("outcome",))
# livemax: a worker's series goes when it exits (child_exit), so after a rollout (SIGHUP) only the
# model that live workers serve is listed.
MODEL_INFO = Gauge("model_info", "The model this server answers with (always 1)",
                   ("name", "version", "sha256", "backend"), multiprocess_mode="livemax")


@bp.get("/metrics")
def metrics():
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


@functools.cache
def _series(metric, *labels):
    """metric.labels(*labels), looked up once per process: labels() takes a lock and checks its
    values on every call, several times per request. Holds one entry per series, as the metric does."""
    return metric.labels(*labels)


class stage:
    """Time one stage of a prediction (`preprocess` or `inference`); a stage that raises (a bad
    request) is not a sample of how long the work takes, so it is not recorded. (A class, not a
    @contextmanager: that costs a generator and its bookkeeping twice per request.)"""

    def __init__(self, name):
        self.series = _series(STAGE_SECONDS, name)

    def __enter__(self):
        self.started = time.perf_counter()

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.series.observe(time.perf_counter() - self.started)


def record_answers(answers):
    """Count what one request read (a predictor.Classification): the digits of images that hold one,
    and every image by is_digit and reason. The access log (logs.py) reports the digits too."""
    digits = [int(d) for d in answers.digits]
    for digit, is_digit, reason in zip(digits, answers.is_digit, answers.reasons):
        _series(ANSWERS, "true" if is_digit else "false", reason or "none").inc()
        if is_digit:
            _series(DIGITS, str(digit)).inc()
    g.digits = digits


def record_readings(texts):
    """Count the numbers one /read request read, by length (not by text: numbers may be private)."""
    for text in texts:
        _series(NUMBERS, str(min(len(text), 13))).inc()


def _record_request(response):
    # The route's pattern, not the raw path: a scan of random URLs must not create a series per URL.
    current = request._get_current_object()  # not the thread-local proxy, on every request
    endpoint = current.url_rule.rule if current.url_rule is not None else "unmatched"
    _series(REQUESTS, endpoint, current.method, str(response.status_code)).inc()
    started = g.get("request_started")
    if started is not None:
        _series(REQUEST_SECONDS, endpoint).observe(time.perf_counter() - started)
    code = g.get("error_code")
    if code is not None:
        _series(ERRORS, code).inc()
    return response


def register(app):
    app.register_blueprint(bp)
    app.after_request(_record_request)
    predictor = app.extensions["predictor"]
    MODEL_INFO.labels(predictor.name, predictor.version, predictor.sha256 or "", predictor.backend).set(1)
