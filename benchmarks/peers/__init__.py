"""The servers a user would pick instead of ours, serving the same model for `make bench`: BentoML
(bentoml_service.py) and LitServe (litserve_server.py), each written the way its documentation shows.

They run from their own virtualenv (.venv-bench, requirements-bench.txt, made by `make bench` only):
neither framework is a dependency of the service or of its image. Both load the model through the
service's own `Predictor` (the same LiteRT conversion, from the same cache) and read an upload the
simple way most examples do -- greyscale, resized to 28x28 -- so they do less per request than the
service (which finds, crops and centres the ink) and measure the framework, not our preprocessing.
"""
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from flaskService.digits.model import INPUT_SHAPE, NUM_CLASSES
from flaskService.digits.predictor import Predictor

ROOT = Path(__file__).resolve().parent.parent.parent
WORKERS = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))


def load_predictor():
    """The service's model (MODEL_PATH, else the shipped one), converted once and cached as the
    service does it, warmed up."""
    predictor = Predictor.from_path(os.environ.get("MODEL_PATH", ROOT / "flaskService" / "model.h5"))
    predictor.warm_up()
    return predictor


def pixels(image):
    """An uploaded PIL image (or its bytes) -> the model's (1, 28, 28, 1) input, the simple way."""
    if isinstance(image, (bytes, bytearray)):
        image = Image.open(io.BytesIO(image))
    grey = image.convert("L").resize(INPUT_SHAPE[:2])
    return np.asarray(grey, dtype=np.float32).reshape(1, *INPUT_SHAPE) / 255.0


def answer(predictor, inputs):
    """The model's answer for one image, as JSON: the digit and its probabilities."""
    probabilities = predictor.predict(inputs)[0, :NUM_CLASSES]
    return {"digit": int(probabilities.argmax()), "probabilities": probabilities.tolist()}
