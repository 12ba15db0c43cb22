"""The digit recognition service: `create_app()` builds it; gunicorn runs `flaskService:create_app()`.

The image core (flaskService.digits) imports no web framework; importing it, as training does, runs
this file first, so the app factory lives in flaskService/app.py and is imported only when called.
"""


def create_app(test_config=None):
    """Build the Flask app (flaskService.app.create_app): defaults, then the environment, then `test_config`."""
    from .app import create_app as build

    return build(test_config)
