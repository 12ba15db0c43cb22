"""POST /predict: the request's images -> digits, as JSON."""
import base64

from flask import Blueprint, current_app, request

from . import metrics, payload
from .digits.preprocess import encode_png

bp = Blueprint("api", __name__)


@bp.post("/predict")
def predict():
    config = current_app.config
    with metrics.stage("preprocess"):
        # The request itself, not Flask's thread-local proxy to it: payload reads it a dozen times.
        images = payload.read(request._get_current_object(), config["MAX_IMAGES"], config["MAX_PIXELS"],
                              config["MAX_REQUEST_PIXELS"])
    predictor = current_app.extensions["predictor"]
    with metrics.stage("inference"):
        answers = predictor.classify(images.arrays, config["MIN_DIGIT_SCORE"])
    metrics.record_answers(answers)
    debug = request.args.get("debug") in ("1", "true")
    results = [_prediction(answers, i, images.arrays[i] if debug else None) for i in range(len(images.arrays))]
    model = {"name": predictor.name, "version": predictor.version}
    if images.is_list:
        return {"predictions": results, "model": model}
    return {**results[0], "model": model}


def _prediction(answers, index, array):
    """One image's answer. The digit, its confidence and the probabilities are the best guess even
    when the image is not one digit; `is_digit` says whether to trust it, `reason` why not."""
    score = answers.digit_score
    result = {"digit": int(answers.digits[index]), "confidence": float(answers.confidence[index]),
              "probabilities": answers.probabilities[index].tolist(),
              "is_digit": bool(answers.is_digit[index]),
              "digit_score": None if score is None else float(score[index])}
    if answers.reasons[index] is not None:
        result["reason"] = answers.reasons[index]
    if array is not None:
        result["input"] = "data:image/png;base64," + base64.b64encode(encode_png(array)).decode()
    return result
