"""Fixtures for the hostile suite: a real gunicorn, and MNIST test digits the shipped model reads clearly."""
import time

import numpy as np
import pytest
import requests

from flaskService.preprocess import preprocess_image
from tests.hostile import corpus

SECONDS = 1.0  # every answer of the real server, right or refused, comes well within this
PER_DIGIT = 3  # clear examples kept per digit: enough variety for the load test, cheap to pick
CLEAR = 0.98  # "clear": the model gives the right digit at least this probability on the plain PNG


@pytest.fixture(scope="session")
def service(server):
    """The session's real gunicorn (2 workers, the shipped model, default limits): these tests only send requests."""
    return server


@pytest.fixture(scope="session")
def clear_digits(mnist, predictor):
    """{digit: [28x28 uint8 MNIST test images]}: ones the model reads right, sure, as a plain PNG page.
    The model is being retrained; "predicted right" must not depend on its hardest digits."""
    images, labels = mnist["x_test"][:1500], mnist["y_test"][:1500]
    arrays = np.stack([preprocess_image(corpus.png_grey(image)[0]) for image in images])
    probabilities = predictor.predict(arrays)
    chosen = {}
    for image, label, p in zip(images, labels, probabilities):
        label = int(label)
        if p.argmax() == label and p[label] >= CLEAR and len(chosen.setdefault(label, [])) < PER_DIGIT:
            chosen[label].append(image)
    assert all(len(chosen.get(d, [])) == PER_DIGIT for d in range(10)), "the model reads some digit poorly"
    return chosen


def post(service, **kwargs):
    """POST /predict to the real server, which must answer within SECONDS."""
    started = time.monotonic()
    response = requests.post(service.url + "/predict", timeout=10, **kwargs)
    assert time.monotonic() - started < SECONDS, "answered too slowly"
    return response
