"""GET /: the page where a person draws a digit and sees what the model reads."""
from flask import Blueprint, render_template

bp = Blueprint("page", __name__)

# The page loads only its own script, stylesheet and data: images (the 28x28 input from debug=1),
# and talks only to this server; the policy makes the browser hold it to that.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@bp.get("/")
def index():
    return render_template("index.html"), {"Content-Security-Policy": CONTENT_SECURITY_POLICY}
