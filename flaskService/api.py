"""POST /predict: the request's images -> digits, as JSON."""
import base64

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
    digits = probabilities.argmax(axis=1)
    metrics.record_digits(digits)
    debug = request.args.get("debug") in ("1", "true")
    results = [_prediction(d, p, a if debug else None) for d, p, a in zip(digits, probabilities, images.arrays)]
    model = {"name": predictor.name, "version": predictor.version}
    if images.is_list:
        return {"predictions": results, "model": model}
    return {**results[0], "model": model}


def _prediction(digit, probabilities, array):
    digit = int(digit)
    result = {"digit": digit, "confidence": float(probabilities[digit]),
              "probabilities": [float(p) for p in probabilities]}
    if array is not None:
        result["input"] = "data:image/png;base64," + base64.b64encode(encode_png(array)).decode()
    return result
