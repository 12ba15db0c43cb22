"""The app factory: `create_app()` builds the Flask app from the HTTP modules beside it and the image
core (flaskService.digits). gunicorn runs it as `flaskService:create_app()` (flaskService/__init__.py)."""
import functools
import json
import logging
from pathlib import Path

import orjson
from flask import Flask
from flask.json.provider import JSONProvider

from . import auth, config, deadline, errors, feedback, health, logs, metrics, openapi, page, predict, read, v2
from .digits import selfcheck, sequence
from .digits.predictor import Predictor
from .errors import ApiError

log = logging.getLogger(__name__)


class Readiness:
    """Whether this worker should get traffic, and if not, why."""

    def __init__(self):
        self.ready = False
        self.reason = "the model is loading"

    def set(self, reason):
        self.ready, self.reason = reason is None, reason

    def require(self):
        """Raise 503 not_ready, saying why, unless this worker should get traffic."""
        if not self.ready:
            raise ApiError(503, "not_ready", self.reason)


class OrjsonProvider(JSONProvider):
    """orjson for every JSON body Flask writes or reads: a 256-digit answer is serialised about ten
    times faster than by the standard library (the V2 endpoints use orjson directly, for the same reason)."""

    def dumps(self, obj, **kwargs):
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY).decode()

    def loads(self, s, **kwargs):
        return orjson.loads(s)


def create_app(test_config=None):
    """Defaults, then the environment, then `test_config`; the model is loaded and checked here,
    once per worker, so a worker that exists can answer."""
    app = Flask("flaskService")
    app.json = OrjsonProvider(app)
    app.config.from_mapping(config.from_environment())
    if test_config is not None:
        app.config.from_mapping(test_config)
    errors.register(app)
    deadline.register(app)
    auth.register(app)
    app.register_blueprint(predict.bp)
    app.register_blueprint(read.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(page.bp)
    app.register_blueprint(v2.bp)
    app.register_blueprint(openapi.bp)
    feedback.register(app)
    logs.register(app)

    readiness = app.extensions["readiness"] = Readiness()
    # Tests hand in one predictor for the whole session instead of reloading the model per app.
    predictor = app.config.get("PREDICTOR") or Predictor.from_path(
        app.config["MODEL_PATH"], backend=app.config["INFERENCE_BACKEND"])
    predictor.warm_up()
    app.extensions["predictor"] = predictor
    number_predictor = app.config.get("NUMBER_PREDICTOR") or Predictor.from_path(
        app.config["NUMBER_MODEL_PATH"], backend=app.config["INFERENCE_BACKEND"], contract=sequence.NUMBERS)
    number_predictor.warm_up()
    app.extensions["number_predictor"] = number_predictor
    app.extensions["read_number"] = functools.partial(
        sequence.read_number, frames_of=deadline.checked(number_predictor.predict), min_digit_score=app.config["MIN_DIGIT_SCORE"])
    app.extensions["model_card"] = _model_card(app.config["MODEL_PATH"])
    metrics.register(app)
    readiness.set(selfcheck.run(predictor) or selfcheck.run(number_predictor))
    if not readiness.ready:
        log.error(readiness.reason)
    return app


def _model_card(model_path):
    """The card that training wrote next to the model (model.json beside model.h5), if any."""
    card = Path(model_path).with_suffix(".json")
    try:
        return json.loads(card.read_text())
    except (OSError, ValueError):
        return {}
