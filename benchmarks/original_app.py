"""The two reference points `bench.py` measures the service against, run under the same gunicorn
settings (`gunicorn -c flaskService/gunicorn.conf.py "benchmarks.original_app:create_app()"`).

- `create_app()`: the original approach -- Flask, a naive resize of the upload to 28x28 and
  Keras's `model.predict` once per request, on our model loaded the way the service loads it.
- `create_ceiling_app()`: Flask reading the same multipart upload and answering a constant JSON
  of the service's shape: the most this design can do when a request costs nothing.
"""
import numpy as np
from flask import Flask, request
from PIL import Image

from flaskService.app import Readiness
from flaskService.config import from_environment
from flaskService.digits.model import load_model


def create_app():
    app = _app()
    model = load_model(from_environment()["MODEL_PATH"])

    @app.post("/predict")
    def predict():
        image = Image.open(request.files["image"]).convert("L").resize((28, 28))
        pixels = np.asarray(image, dtype=np.float32).reshape(1, 28, 28, 1) / 255.0
        probabilities = model.predict(pixels, verbose=0)[0]
        return {"digit": int(probabilities.argmax()), "probabilities": probabilities.tolist()}

    return app


def create_ceiling_app():
    app = _app()
    answer = {"digit": 7, "confidence": 0.99, "probabilities": [0.001] * 7 + [0.99] + [0.001] * 2,
              "model": {"name": "mnist", "version": "constant"}}

    @app.post("/predict")
    def predict():
        request.files["image"].read()
        return answer

    return app


def _app():
    app = Flask(__name__)
    # gunicorn.conf.py's SIGTERM hook turns the worker's readiness to "shutting down".
    app.extensions["readiness"] = Readiness()
    return app
