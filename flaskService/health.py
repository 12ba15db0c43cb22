"""Liveness, readiness and the model card: what load balancers and operators ask the service."""
from flask import Blueprint, current_app

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
            "sha256": predictor.sha256, "backend": predictor.backend}
