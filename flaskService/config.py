"""The service's one settings object, read from the environment (Twelve-Factor III).

Every setting has a documented default; a value that is present but wrong stops the process at
startup with one line naming the variable, instead of failing on some later request.
"""
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


class ConfigError(Exception):
    """An environment variable holds a value the service cannot use."""


def _positive_int(name, text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {text!r}")
    return value


def _positive_float(name, text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:  # also refuses nan
        raise ConfigError(f"{name} must be a positive number, got {text!r}")
    return value


def _choice(*allowed):
    def parse(name, text):
        if text not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {text!r}")
        return text
    return parse


def _fraction(name, text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a number from 0 to 1, got {text!r}")
    return value


def _keys(name, text):
    return tuple(key.strip() for key in text.split(",") if key.strip())


def _database_url(name, text):
    if text != "off" and not text.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://", "postgres://")):
        raise ConfigError(f"{name} must be sqlite:///PATH, postgresql://USER:PASSWORD@HOST/DB or off; got {text!r}")
    return text


# name: (default, parser, what it is) -- the README's configuration table is this table.
SETTINGS = {
    "MODEL_PATH": (str(PACKAGE_DIR / "model.h5"), lambda name, text: text,
                   "Keras model to serve: .h5 (Keras 3 or Keras 2) or .keras"),
    "NUMBER_MODEL_PATH": (str(PACKAGE_DIR / "number_model.h5"), lambda name, text: text,
                          "the number reader's model (POST /read, V2 mnist-number): .h5 or .keras"),
    "MAX_CONTENT_LENGTH": (4 * 1024 * 1024, _positive_int, "largest request body, bytes (413 above)"),
    "MAX_PIXELS": (16_000_000, _positive_int, "largest image, pixels (413 above)"),
    "MAX_REQUEST_PIXELS": (16_000_000, _positive_int,
                           "most pixels all of one request's images decode to, read from their headers "
                           "before any is decoded; a pixel array counts 784 (413 above)"),
    "REQUEST_TIMEOUT": (20.0, _positive_float,
                        "seconds a request may work; past it, the work stops between images and the "
                        "answer is 503 deadline_exceeded (under gunicorn's 30 s timeout and nginx's 25 s)"),
    "MAX_IMAGES": (256, _positive_int, "most images in one request (413 above)"),
    "MAX_FORM_PARTS": (300, _positive_int, "most multipart parts in one request (413 above)"),
    "MIN_DIGIT_SCORE": (0.5, _fraction,
                        "is_digit is true when the model's probability that the image is one digit is at "
                        "least this (0-1; higher turns more doubtful images away)"),
    "INFERENCE_BACKEND": ("auto", _choice("auto", "litert", "keras"),
                          "auto: LiteRT, falling back to Keras if the model cannot be converted"),
    "API_KEYS": ((), _keys, "comma-separated keys; when set, /predict and V2 infer require one"),
    "METRICS_API_KEYS": ((), _keys,
                         "comma-separated keys; when set, /metrics requires one (API_KEYS do not open it)"),
    "FEEDBACK_DB": (f"sqlite:///{PACKAGE_DIR.parent / 'data' / 'feedback.db'}", _database_url,
                    "where POST /feedback keeps corrections: sqlite:///PATH or postgresql://...; off keeps none"),
    "FEEDBACK_MAX_ROWS": (10_000, _positive_int, "most corrections kept; POST /feedback answers 507 at the cap"),
    "FEEDBACK_MAX_BYTES": (512 * 1024 * 1024, _positive_int,
                           "most bytes of images and model inputs kept; POST /feedback answers 507 when a "
                           "correction would pass it, 413 for one larger than it"),
    "FEEDBACK_RETENTION_DAYS": (365, _positive_int, "corrections older than this are deleted"),
    "ADMIN_API_KEYS": ((), _keys, "comma-separated keys for GET /feedback/export and DELETE /feedback/ID; "
                                  "unset, those routes answer 403"),
}


def from_environment(environ=os.environ):
    """The settings as a dict: defaults, overridden by whatever the environment sets."""
    config = {}
    for name, (default, parse, _) in SETTINGS.items():
        text = environ.get(name)
        config[name] = default if text is None or text == "" else parse(name, text)
    return config
