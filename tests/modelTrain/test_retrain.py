"""Retraining on corrections: modelTrain/corrections.py reads the service's database and its export
alike, and corrections of a style the shipped model misreads fix that style once train.py
fine-tunes on them (--init --feedback)."""
import base64
import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image, ImageDraw

from flaskService import create_app
from flaskService.digits.predictor import Predictor
from flaskService.digits.preprocess import preprocess_image
from modelTrain.corrections import CorrectionsError, load_corrections
from tests.helpers import MODEL_PATH, ROOT, image_bytes

CORRECTIONS = 150  # slashed zeros made from MNIST *training* zeros, sent through POST /feedback


def slashed_zero(image):
    """A zero as many programmers write it, struck through from below left to above right, past the
    ring (Ø): the shipped model reads most of them as 8."""
    rows, columns = np.nonzero(image > 60)
    picture = Image.fromarray(image)
    ImageDraw.Draw(picture).line([(columns.min() - 2, rows.max() + 2), (columns.max() + 2, rows.min() - 2)],
                                 fill=255, width=3)
    return np.asarray(picture)


def read_as_zero(predictor, images):
    arrays = np.stack([preprocess_image(image_bytes(image)) for image in images])
    return float((predictor.predict(arrays)[:, :10].argmax(axis=1) == 0).mean())


@pytest.fixture(scope="module")
def corrections_db(tmp_path_factory, mnist, predictor):
    """A SQLite FEEDBACK_DB holding CORRECTIONS slashed zeros, sent through the service's own POST /feedback."""
    database = f"sqlite:///{tmp_path_factory.mktemp('corrections') / 'feedback.db'}"
    client = create_app({"TESTING": True, "PREDICTOR": predictor, "FEEDBACK_DB": database,
                         "ADMIN_API_KEYS": ("key",)}).test_client()
    zeros = mnist["x_train"][mnist["y_train"] == 0][:CORRECTIONS]
    for image in zeros:
        png = image_bytes(slashed_zero(image))
        response = client.post("/feedback", json={"image": base64.b64encode(png).decode(), "label": 0})
        assert response.status_code == 201, response.json
    return database, client


def test_export_and_database_give_the_same_corrections(corrections_db, tmp_path):
    database, client = corrections_db
    x_db, y_db = load_corrections(database)
    exported = client.get("/feedback/export", headers={"X-API-Key": "key"}).data
    (tmp_path / "export.zip").write_bytes(exported)
    zipfile.ZipFile(io.BytesIO(exported)).extractall(tmp_path / "export")
    for source in (tmp_path / "export.zip", tmp_path / "export"):
        x, y = load_corrections(source)
        assert x.shape == x_db.shape == (CORRECTIONS, 28, 28, 1)
        # The export holds the original images; preprocessing them again gives what was stored
        # (in another order: folder by folder).
        assert sorted(zip(y, (a.tobytes() for a in x))) == sorted(zip(y_db, (a.tobytes() for a in x_db)))


def test_training_never_reads_corrections_past_retention(corrections_db, tmp_path, monkeypatch):
    """Retention holds when training reads the database too: a correction aged past
    FEEDBACK_RETENTION_DAYS is not loaded, though no new row has been added since."""
    import sqlite3
    from datetime import datetime, timedelta, timezone

    import sqlalchemy as sa

    from flaskService.feedback_store import corrections, engine_for

    database, _ = corrections_db
    copy = tmp_path / "feedback.db"
    with sqlite3.connect(database.removeprefix("sqlite:///")) as source, sqlite3.connect(copy) as target:
        source.backup(target)  # the rows may still sit in the write-ahead log, which a file copy misses
    url = f"sqlite:///{copy}"
    engine = engine_for(url)
    with engine.begin() as connection:
        connection.execute(sa.update(corrections).where(corrections.c.id <= 10)
                           .values(created_at=datetime.now(timezone.utc) - timedelta(days=31)))
    engine.dispose()
    monkeypatch.setenv("FEEDBACK_RETENTION_DAYS", "30")
    x, y = load_corrections(url)
    assert len(y) == CORRECTIONS - 10


@pytest.mark.parametrize("source", ("sqlite:////nonexistent/feedback.db", "postgresql://nobody@127.0.0.1:1/x",
                                    "/nonexistent/folder"))
def test_an_unreadable_source_is_one_clear_error(source):
    with pytest.raises(CorrectionsError, match="nonexistent|127.0.0.1|no such"):
        load_corrections(source)


@pytest.mark.slow
def test_fine_tuning_on_corrections_fixes_a_misread_style(corrections_db, mnist, mnist_npz, predictor, tmp_path):
    """Before: the shipped model reads under half of the 980 slashed test zeros as 0. After two
    epochs from it on our MNIST training images plus the corrections (each seen 10 times): at least
    90%, and MNIST test accuracy (all 10,000) stays at 99% or more. (Four epochs on 3,000 images
    were enough for the previous model; from 188ca6152c98 they left MNIST at 98.8-98.9%.)"""
    database, _client = corrections_db
    slashed_test = [slashed_zero(image) for image in mnist["x_test"][mnist["y_test"] == 0]]  # all 980
    before = read_as_zero(predictor, slashed_test)
    assert before < 0.5, f"the shipped model reads {before:.0%} of slashed zeros right: pick another style"

    out = tmp_path / "tuned"
    done = subprocess.run(
        ["nice", "-n", "10", sys.executable, "modelTrain/train.py", "--data", mnist_npz, "--feedback-weight", "10",
         "--epochs", "2", "--init", MODEL_PATH, "--feedback", database, "--out", out, "--seed", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    tuned = Predictor.from_path(out / "model.h5")
    after = read_as_zero(tuned, slashed_test)
    card = json.loads((out / "model.json").read_text())
    print(f"slashed test zeros read as 0: {before:.1%} -> {after:.1%}; card: {card['feedback']}; "
          f"MNIST test {card['test']['accuracy']:.2%}")
    assert after >= 0.9
    feedback = card["feedback"]
    assert (feedback["corrections"], feedback["trained_on"], feedback["held_out"]) == (CORRECTIONS, 120, 30)
    # 30 held-out corrections (one is 3.3 points): the 980 test zeros above carry the 90% claim.
    assert feedback["held_out_accuracy"] >= 0.8 > 0.5 > feedback["held_out_accuracy_before"]
    assert card["training"]["init"]["path"] == str(MODEL_PATH)
    # A quick run (two epochs); the full fine-tune's figure (five epochs) is in the README.
    assert card["test"]["accuracy"] >= 0.99
    assert read_as_zero(tuned, mnist["x_test"][mnist["y_test"] == 0]) >= 0.99
