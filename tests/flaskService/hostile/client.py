"""How the hostile suite sends one request: POST /predict to the real server, within a time limit."""
import time

import requests

SECONDS = 1.0  # every answer of the real server, right or refused, comes well within this


def post(service, **kwargs):
    """POST /predict to the real server, which must answer within SECONDS."""
    started = time.monotonic()
    response = requests.post(service.url + "/predict", timeout=10, **kwargs)
    assert time.monotonic() - started < SECONDS, "answered too slowly"
    return response
