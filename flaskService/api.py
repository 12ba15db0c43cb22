"""POST /predict: the request's images -> digits, as JSON."""
import base64

import numpy as np
from flask import Blueprint, current_app, request

from . import metrics, payload
from .preprocess import encode_png

bp = Blueprint("api", __name__)


@bp.post("/predict")
def predict():
    config = current_app.config
    with metrics.stage("preprocess"):
        # The request itself, not Flask's thread-local proxy to it: payload reads it a dozen times.
        images = payload.read(request._get_current_object(), config["MAX_IMAGES"], config["MAX_PIXELS"])
    predictor = current_app.extensions["predictor"]
    with metrics.stage("inference"):
        probabilities = predictor.predict(images.arrays)
    metrics.record_digits(probabilities.argmax(axis=1))
    debug = request.args.get("debug") in ("1", "true")
    results = [_prediction(p, a if debug else None) for p, a in zip(probabilities, images.arrays)]
    model = {"name": predictor.name, "version": predictor.version}
    if images.is_list:
        return {"predictions": results, "model": model}
    return {**results[0], "model": model}


def _prediction(probabilities, array):
    digit = int(np.argmax(probabilities))
    result = {"digit": digit, "confidence": float(probabilities[digit]),
              "probabilities": [float(p) for p in probabilities]}
    if array is not None:
        result["input"] = "data:image/png;base64," + base64.b64encode(encode_png(array)).decode()
    return result
