"""Liveness, readiness and the model card: what load balancers and operators ask the service."""
from flask import Blueprint, current_app

from .digits.model import NUM_CLASSES

bp = Blueprint("health", __name__)


@bp.get("/health/live")
def live():
    return {"status": "live"}


@bp.get("/health/ready")
def ready():
    current_app.extensions["readiness"].require()
    return {"status": "ready"}


@bp.get("/model")
def model():
    predictor = current_app.extensions["predictor"]
    return {**current_app.extensions["model_card"], "name": predictor.name, "version": predictor.version,
            "sha256": predictor.sha256, "backend": predictor.backend,
            # Whether is_digit means anything: a digits-only (legacy) model answers every image as a digit.
            "detects_non_digits": predictor.outputs > NUM_CLASSES,
            "min_digit_score": current_app.config["MIN_DIGIT_SCORE"]}
