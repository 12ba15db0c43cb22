"""Rolling out a model under real gunicorn (flaskService/rollout.py): on SIGHUP a model that fails
its check (a truncated model.h5, a truncated conversion beside a good one) is refused and the old one
keeps serving without a failed request; a good one is served afterwards; a bad model at start stops
gunicorn with one line. Each request has a timeout; timings are printed, never asserted."""
import shutil
import signal
import threading
import time

import h5py
import numpy as np
import pytest
import requests

from flaskService.digits.model import sha256_of
from flaskService.digits.predictor import Predictor, conversion_path
from flaskService.digits.preprocess import preprocess_image
from tests.helpers import MODEL_PATH, NUMBER_MODEL_PATH, SHARED_DATA, gunicorn_start_error, image_bytes
from tests import load

SEED_MODEL = SHARED_DATA / "seed_model.h5"


@pytest.fixture(scope="module")
def seed():
    """The 2020 seed model, a good model other than the shipped one."""
    return Predictor.from_path(SEED_MODEL)


@pytest.fixture(scope="module")
def both_read(predictor, seed, mnist):
    """MNIST test digits (as PNG) that the shipped model and the seed model both read right."""
    images, labels = mnist["x_test"][:300], mnist["y_test"][:300]
    pngs = [image_bytes(image) for image in images]
    arrays = np.stack([preprocess_image(png) for png in pngs])
    right = (predictor.predict(arrays)[:, :10].argmax(1) == labels) & (seed.predict(arrays)[:, :10].argmax(1) == labels)
    return [(png, int(label)) for png, label, ok in zip(pngs, labels, right) if ok][:40]


def truncated_model(model_path, tmp_path, seed):
    """A truncated copy written over the served file in place (`cp`, not a rename)."""
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(model_path.read_bytes()[:120_000])
    shutil.copyfile(truncated, model_path)
    return f"cannot read model {model_path}"


def truncated_conversion(model_path, tmp_path, seed):
    """A good new model.h5, renamed into place, with a truncated conversion beside it under its name."""
    staged = tmp_path / "model.h5.new"
    shutil.copyfile(SEED_MODEL, staged)
    conversion = conversion_path(model_path, sha256_of(SEED_MODEL))
    conversion.write_bytes(seed._tflite[:len(seed._tflite) // 2])
    staged.replace(model_path)
    return f"{conversion} does not load in LiteRT"


def good_model(model_path, tmp_path, seed):
    staged = tmp_path / "model.h5.new"
    shutil.copyfile(SEED_MODEL, staged)
    staged.replace(model_path)
    return None


@pytest.mark.slow
@pytest.mark.parametrize("change", (truncated_model, truncated_conversion, good_model))
def test_sighup_rolls_out_only_a_model_that_passes(start_server, tmp_path, both_read, seed, change):
    """Load runs throughout; the model at MODEL_PATH changes and gunicorn gets SIGHUP. A bad model is
    refused with one log line and the old sha256 is still served; a good one is served afterwards.
    Either way the workers are replaced, gunicorn stays up and no request fails."""
    model_path = tmp_path / "model.h5"
    shutil.copyfile(MODEL_PATH, model_path)
    server = start_server({"MODEL_PATH": str(model_path)}, workers=2)
    old_workers = server.workers(expected=2)
    old_sha, new_sha = sha256_of(MODEL_PATH), sha256_of(SEED_MODEL)
    assert requests.get(server.url + "/model", timeout=5).json()["sha256"] == old_sha

    entries = [load.Entry("png", "POST", "/predict", {"data": png, "headers": {"Content-Type": "image/png"}},
                          200, [label]) for png, label in both_read]
    ledger, stop = [], threading.Event()

    def keep_loading():
        while not stop.is_set():
            ledger.extend(load.send(server.url, [load.Entry(e.kind, e.method, e.path, e.kwargs, e.status, e.digits)
                                                 for e in entries], concurrency=4, timeout=30))

    loader = threading.Thread(target=keep_loading)
    loader.start()
    try:
        while len(ledger) < 100:
            time.sleep(0.05)
        reason = change(model_path, tmp_path, seed)
        expected = old_sha if reason else new_sha
        hung_up = time.monotonic()
        server.process.send_signal(signal.SIGHUP)
        load.wait_for_rollout(server, old_workers, expected)
        replaced_in = time.monotonic() - hung_up
        load.wait_for_more(ledger, 100)
    finally:
        stop.set()
        loader.join(120)

    figures = load.summary(ledger)
    slowest = max(e.ended - e.started for e in ledger)
    print(f"{change.__name__}: {figures}; slowest request {slowest:.2f} s; new workers serving "
          f"{replaced_in:.1f} s after SIGHUP")
    failed = [e for e in ledger if not e.answered]
    assert not failed, f"{figures}; first: {failed[0].error}"
    wrong = [e for e in ledger if not e.right]
    assert not wrong, f"{figures}; first: {wrong[0].kind} {wrong[0].got_status} {wrong[0].got_digits}"
    log = server.log_text()
    refusals = [line for line in log.splitlines() if "new model refused" in line]
    if reason:
        assert len(refusals) == 1 and reason in refusals[0], log[-3000:]
        assert f"still serving {model_path} (sha256 {old_sha[:12]})" in refusals[0]
    else:
        assert not refusals and f"rolling out {model_path} (sha256 {new_sha[:12]}" in log, log[-3000:]
    assert "Worker failed to boot" not in log and "Traceback" not in log


def zeroed_weights(path, tmp_path):
    """The seed model with every weight zero: it loads and converts, and reads every digit as 0."""
    def zero(name, item):
        if isinstance(item, h5py.Dataset):
            item[...] = 0

    shutil.copyfile(SEED_MODEL, path)
    with h5py.File(path, "r+") as f:
        f["model_weights"].visititems(zero)
    return "self-check failed: the model read"


def truncated_conversion_beside(path, tmp_path):
    """The shipped model with a truncated conversion beside it, under its expected name."""
    shutil.copyfile(MODEL_PATH, path)
    tflite = Predictor.from_path(MODEL_PATH)._tflite
    conversion = conversion_path(path)
    conversion.write_bytes(tflite[:len(tflite) // 3])
    return f"{conversion} does not load in LiteRT"


@pytest.mark.parametrize("make", (zeroed_weights, truncated_conversion_beside))
def test_bad_model_stops_the_start_with_one_line(tmp_path, make):
    """A model that loads but fails the self-check, or a corrupt conversion beside a good model: exit
    1 before any worker starts, one `error:` line saying why, and no copy of the model left behind."""
    path = tmp_path / "model.h5"
    reason = make(path, tmp_path)
    private = tmp_path / "tmp"
    private.mkdir()
    started = time.monotonic()
    error = gunicorn_start_error({"MODEL_PATH": str(path), "TMPDIR": str(private)})
    print(f"{make.__name__}: gunicorn stopped after {time.monotonic() - started:.1f} s: {error}")
    assert reason in error, error
    assert not list(private.glob("flaskService-served-*"))


@pytest.mark.parametrize("damage", ("truncated", "a digit model"))
def test_a_bad_number_model_stops_the_start_with_one_line(tmp_path, damage):
    """The number reader's model is checked like the digit model: a truncated file, or a model of the
    wrong kind at NUMBER_MODEL_PATH, stops gunicorn with one line naming it."""
    path = tmp_path / "number_model.h5"
    if damage == "truncated":
        path.write_bytes(NUMBER_MODEL_PATH.read_bytes()[:50_000])
        reason = f"cannot read model {path}"
    else:
        shutil.copyfile(MODEL_PATH, path)
        reason = "expected (None, 32, 256, 1)"
    error = gunicorn_start_error({"NUMBER_MODEL_PATH": str(path), "TMPDIR": str(tmp_path)})
    assert reason in error and str(path) in error, error


def test_the_number_models_self_check_reads_the_drawn_number(number_predictor):
    from flaskService.digits import selfcheck

    assert selfcheck.run(number_predictor) is None
