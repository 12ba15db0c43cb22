"""Fixtures shared by the whole suite: the real data, the shipped model, apps, real servers and a
browser. The helpers the tests import are in tests/helpers.py."""
import os
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import CHROMIUM, CHROMIUM_ARGS, MODEL_PATH, NUMBER_MODEL_PATH, SHARED_DATA, Server, Tab

PER_DIGIT = 3  # clear examples kept per digit: enough variety for the load test, cheap to pick
CLEAR = 0.98  # "clear": the model gives the right digit at least this probability on the plain PNG


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (Playwright's sync API allows one driver per process)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, server):
    """Open a page of the session's server: `open_page(options, path="/")` -> a Tab, its browser
    context made with `options` (viewport, touch, ...); every tab is closed after the test."""
    tabs = []

    def open_(options, path="/"):
        tabs.append(Tab(browser, server.url, options, path))
        return tabs[-1]

    yield open_
    for tab in tabs:
        tab.context.close()


@pytest.fixture(scope="session", autouse=True)
def feedback_db(tmp_path_factory):
    """Corrections that the suite's apps and servers store go to a throwaway SQLite file, never to
    the checkout's data/ (the FEEDBACK_DB default); a test that needs another store sets its own."""
    os.environ["FEEDBACK_DB"] = f"sqlite:///{tmp_path_factory.mktemp('feedback') / 'feedback.db'}"
    return os.environ["FEEDBACK_DB"]


@pytest.fixture(scope="session")
def mnist_npz():
    """Path of the MNIST npz: MNIST_NPZ (as .ci/run sets it), else ../shared/data/mnist.npz."""
    path = Path(os.environ.get("MNIST_NPZ", SHARED_DATA / "mnist.npz"))
    assert path.is_file(), f"no MNIST npz at {path}: set MNIST_NPZ"
    return path.resolve()


@pytest.fixture(scope="session")
def mnist(mnist_npz):
    """The MNIST npz as a dict of arrays."""
    with np.load(mnist_npz) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def predictor():
    """The shipped model, loaded once for the session (loading it per test would dominate the run)."""
    from flaskService.digits.predictor import Predictor

    return Predictor.from_path(MODEL_PATH)


@pytest.fixture(scope="session")
def number_predictor():
    """The shipped number model, loaded once for the session."""
    from flaskService.digits.predictor import Predictor
    from flaskService.digits.sequence import NUMBERS

    return Predictor.from_path(NUMBER_MODEL_PATH, contract=NUMBERS)


@pytest.fixture
def app(predictor, number_predictor):
    from flaskService import create_app

    return create_app({"TESTING": True, "PREDICTOR": predictor, "NUMBER_PREDICTOR": number_predictor})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def clear_digits(mnist, predictor):
    """{digit: [28x28 uint8 MNIST test images]}: ones the model reads right, sure, as a plain PNG page.
    The model is being retrained; "predicted right" must not depend on its hardest digits."""
    from flaskService.digits.preprocess import preprocess_image
    from tests import corpus

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


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One real gunicorn (2 workers, the shipped model) shared by the tests that only send requests."""
    running = Server(log_path=tmp_path_factory.mktemp("gunicorn") / "server.log")
    try:
        yield running.wait_ready()
    finally:
        running.stop()


@pytest.fixture
def start_server(tmp_path):
    """Start gunicorn with extra environment for one test; every server started is stopped after it."""
    started = []

    def start(env=None, workers=2, wait=True):
        running = Server(env=env, workers=workers, log_path=tmp_path / f"server{len(started)}.log")
        started.append(running)
        return running.wait_ready() if wait else running

    yield start
    for running in started:
        running.stop()
