"""The feedback store under real gunicorn: several workers create the schema at once, a PostgreSQL
that stops costs /feedback alone, and a new model rolls out on SIGHUP without a failed request."""
import base64
import io
import os
import shutil
import signal
import threading
import time
import zipfile

import numpy as np
import pytest
import requests

from flaskService.digits.model import sha256_of
from flaskService.digits.predictor import Predictor
from flaskService.digits.preprocess import preprocess_image
from tests.helpers import MODEL_PATH, SHARED_DATA, assert_error, free_port, image_bytes
from tests import load


def correction(png, label):
    return {"image": base64.b64encode(png).decode(), "label": label, "source": "test"}


def test_postgres_going_down_costs_feedback_only(start_server, postgres, postgres_url, mnist):
    """Three workers create the schema on a new database at once; with the database stopped,
    /feedback answers 503 and /predict and readiness are untouched; restarted, /feedback stores again
    and the export holds every correction."""
    server = start_server({"FEEDBACK_DB": postgres_url, "ADMIN_API_KEYS": "operator-key"}, workers=3)
    digits = [(image_bytes(mnist["x_test"][i]), int(mnist["y_test"][i])) for i in range(6)]
    ids = [requests.post(server.url + "/feedback", json=correction(png, label), timeout=10).json()["id"]
           for png, label in digits[:3]]
    assert len(set(ids)) == 3

    postgres.stop()
    try:
        for png, label in digits:
            assert_error(requests.post(server.url + "/feedback", json=correction(png, label), timeout=30),
                         503, "feedback_unavailable")
            answer = requests.post(server.url + "/predict", data=png, headers={"Content-Type": "image/png"}, timeout=10)
            assert answer.status_code == 200 and answer.json()["digit"] == label
        assert requests.get(server.url + "/health/ready", timeout=5).status_code == 200
    finally:
        postgres.start()

    for png, label in digits[3:]:
        response = requests.post(server.url + "/feedback", json=correction(png, label), timeout=30)
        assert response.status_code == 201, response.text

    # The export streams through gunicorn: every correction stored, in its label's folder.
    exported = requests.get(server.url + "/feedback/export", headers={"X-API-Key": "operator-key"}, timeout=30)
    assert exported.status_code == 200
    images = [name for name in zipfile.ZipFile(io.BytesIO(exported.content)).namelist()
              if not name.endswith("/") and name != "feedback.csv"]
    assert sorted(int(name.split("/")[0]) for name in images) == sorted(label for _, label in digits)


def test_a_database_down_at_start_does_not_stop_the_server(start_server, mnist):
    server = start_server({"FEEDBACK_DB": f"postgresql://nobody@127.0.0.1:{free_port()}/feedback"})
    png, label = image_bytes(mnist["x_test"][0]), int(mnist["y_test"][0])
    assert_error(requests.post(server.url + "/feedback", json=correction(png, label), timeout=30),
                 503, "feedback_unavailable")
    assert requests.post(server.url + "/predict", data=png, headers={"Content-Type": "image/png"},
                         timeout=10).json()["digit"] == label
    assert "POST /feedback will answer 503" in server.log_text()


@pytest.fixture
def both_read(predictor, mnist):
    """MNIST test digits (as PNG) that the shipped model and the 2020 seed model both read right."""
    seed = Predictor.from_path(SHARED_DATA / "seed_model.h5")
    images, labels = mnist["x_test"][:300], mnist["y_test"][:300]
    pngs = [image_bytes(image) for image in images]
    arrays = np.stack([preprocess_image(png) for png in pngs])
    right = (predictor.predict(arrays)[:, :10].argmax(1) == labels) & (seed.predict(arrays)[:, :10].argmax(1) == labels)
    return [(png, int(label)) for png, label, ok in zip(pngs, labels, right) if ok][:40]


@pytest.mark.slow
def test_sighup_rolls_out_a_new_model_without_a_failed_request(start_server, tmp_path, both_read):
    """Load runs throughout; the file at MODEL_PATH is replaced (a rename, as the README says) and
    gunicorn gets SIGHUP: every request is answered right, the old workers leave, /model shows the
    new sha256."""
    model_path = tmp_path / "model.h5"
    shutil.copy(MODEL_PATH, model_path)
    server = start_server({"MODEL_PATH": str(model_path)}, workers=2)
    old_workers = server.workers(expected=2)
    new_sha = sha256_of(SHARED_DATA / "seed_model.h5")
    assert requests.get(server.url + "/model", timeout=5).json()["sha256"] == sha256_of(MODEL_PATH) != new_sha

    def entries():
        good = [load.Entry("png", "POST", "/predict", {"data": png, "headers": {"Content-Type": "image/png"}},
                           200, [label]) for png, label in both_read]
        bad = [load.Entry("text", "POST", "/predict", {"data": b"seven", "headers": {"Content-Type": "text/plain"}},
                          415)] * 4
        return good + [load.Entry(e.kind, e.method, e.path, e.kwargs, e.status) for e in bad]

    ledger, stop = [], threading.Event()

    def keep_loading():
        while not stop.is_set():
            ledger.extend(load.send(server.url, entries(), concurrency=8))

    loader = threading.Thread(target=keep_loading)
    loader.start()
    try:
        while len(ledger) < 100:
            time.sleep(0.05)
        staged = tmp_path / "model.h5.new"
        shutil.copy(SHARED_DATA / "seed_model.h5", staged)
        staged.replace(model_path)
        server.process.send_signal(signal.SIGHUP)
        load.wait_for_rollout(server, old_workers, new_sha)
        load.wait_for_more(ledger, 100)
    finally:
        stop.set()
        loader.join(120)

    figures = load.summary(ledger)
    print(figures)
    failed = [e for e in ledger if not e.answered]
    assert not failed, f"{figures}; first: {failed[0].error}"
    wrong = [e for e in ledger if not e.right]
    assert not wrong, f"{figures}; first: {wrong[0].kind} {wrong[0].got_status} {wrong[0].got_digits}"
    assert "Hang up" in server.log_text()
    # The metrics say which model serves: the new one only, once the old workers are gone.
    metrics = requests.get(server.url + "/metrics", timeout=5).text
    assert [line for line in metrics.splitlines() if line.startswith("model_info{")] == [
        line for line in metrics.splitlines() if line.startswith("model_info{") and f'sha256="{new_sha}"' in line] != []
    server.stop()
    # SIGHUP re-reads gunicorn.conf.py; the master still removes its metrics directory on exit.
    assert not os.path.exists(f"/dev/shm/prometheus-{server.process.pid}")
