"""POST /feedback: a person says which digit an image really shows; the service keeps the image (its
pixels, without metadata: image_metadata.py), the input the model saw and what the model answered,
for retraining (modelTrain/corrections.py reads them).

GET /feedback/export (a zip of 0/ ... 9/ image folders, the layout `train.py --data` reads) and
DELETE /feedback/<id> are the operator's, behind ADMIN_API_KEYS (auth.py). Storage is
feedback_store.py; when it fails, /feedback answers 503 and nothing else is affected.
"""
import csv
import io
import logging
import zipfile
from contextlib import contextmanager
from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, request, stream_with_context
from werkzeug.exceptions import HTTPException

from . import metrics, payload
from .digits import preprocess
from .digits.errors import ImageError
from .digits.image_metadata import without_metadata
from .digits.model import NUM_CLASSES
from .errors import ApiError
from .feedback_store import INPUT_DTYPE, FeedbackStore, StoreFull, StoreUnavailable, TooLarge
from .logs import SANE_ID

log = logging.getLogger(__name__)

bp = Blueprint("feedback", __name__)

# What the export's feedback.csv lists for each image; everything stored except the pixels.
MANIFEST = ("id", "created_at", "label", "predicted", "confidence", "client_predicted", "model_version",
            "model_sha256", "request_id", "source", "image_format")


def register(app):
    """Open the store named by FEEDBACK_DB and create its table; a database that is down or a path
    that cannot be written is logged and retried on each correction, never a reason not to start."""
    url = app.config["FEEDBACK_DB"]
    store = None if url == "off" else FeedbackStore(url, app.config["FEEDBACK_MAX_ROWS"],
                                                    app.config["FEEDBACK_RETENTION_DAYS"],
                                                    app.config["FEEDBACK_MAX_BYTES"])
    app.extensions["feedback_store"] = store
    if store is not None:
        try:
            store.ensure_schema()
        except Exception as e:  # noqa: BLE001  predictions never need the database: whatever it does, start
            log.error("POST /feedback will answer 503 until the database works (set FEEDBACK_DB, or "
                      "FEEDBACK_DB=off to collect no feedback): %s", e)
    app.register_blueprint(bp)


@bp.post("/feedback")
def submit():
    try:
        stored = _store_correction(current_app.config)
    except (ImageError, HTTPException) as e:
        status = e.status if isinstance(e, ImageError) else e.code
        metrics.FEEDBACK.labels({503: "unavailable", 507: "full", 404: "disabled"}.get(status, "rejected")).inc()
        raise
    metrics.FEEDBACK.labels("stored").inc()
    return stored, 201


@bp.get("/feedback/export")
def export():
    store = _store()
    with _database():
        count = store.count()  # a database that is down is a 503 now, before the first byte
    name = f"feedback-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.zip"
    log.info("exporting %d corrections", count)
    # Streamed as it is read: thousands of uploads need fit neither in a worker's memory nor in a
    # container's small /tmp. A database failure from here on cuts the download short (a zip
    # without its directory, which no unzip accepts) and is logged (_zipped).
    return Response(stream_with_context(_zipped(store)), mimetype="application/zip",
                    headers={"Content-Disposition": f"attachment; filename={name}"})


@bp.delete("/feedback/<int(max=2147483647):correction_id>")  # the id column is a 32-bit integer
def delete(correction_id):
    store = _store()
    with _database():
        found = store.delete(correction_id)
    if not found:
        raise ApiError(404, "feedback_not_found", f"No correction {correction_id} is stored.")
    return "", 204


def _store_correction(config):
    store = _store()
    image, fields = _read(request._get_current_object())
    label = _digit(fields.get("label"), "label", "invalid_label")
    if label is None:
        raise ApiError(400, "invalid_label", "'label' is required: the digit 0-9 the image really shows.")
    client_predicted = _digit(fields.get("predicted"), "predicted", "invalid_parameter")
    request_id = _token(fields.get("request_id"), "request_id")
    source = _token(fields.get("source"), "source")
    payload.check_pixels([image], config["MAX_PIXELS"], config["MAX_REQUEST_PIXELS"], is_list=False)
    array = preprocess.preprocess_image(image, config["MAX_PIXELS"])
    predictor = current_app.extensions["predictor"]
    # The model's own answer, as /predict gives it (the same confidence, calibrated).
    answer = predictor.classify(array[None], config["MIN_DIGIT_SCORE"])
    predicted, confidence = int(answer.digits[0]), float(answer.confidence[0])
    image, extension = without_metadata(image)
    with _database():
        correction_id = store.add(
            label=label, predicted=predicted, confidence=confidence,
            client_predicted=client_predicted, model_version=predictor.version, model_sha256=predictor.sha256,
            request_id=request_id, source=source, image=image, image_format=extension,
            input=array.astype(INPUT_DTYPE).tobytes())
    return {"id": correction_id, "label": label, "predicted": predicted, "confidence": confidence,
            "model": {"name": predictor.name, "version": predictor.version}}


def _read(request):
    """The one image of a correction (bytes) and its fields (label, predicted, request_id, source):
    multipart or urlencoded form, JSON, or a raw image body with the fields in the query string."""
    mimetype = request.mimetype
    if mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        images, _ = payload.from_form(request)
        fields = request.form
    elif mimetype == "application/json" or mimetype.endswith("+json"):
        fields = payload.parse_json(payload.whole_body(request), "The body is not valid JSON.")
        if not isinstance(fields, dict):
            raise ApiError(400, "invalid_json", "The JSON body must be an object with 'image' and 'label'.")
        image = fields.get("image")
        if image is not None and not isinstance(image, str):
            raise ApiError(400, "invalid_json", "'image' must be a base64 string or a data URL.")
        images = [] if image is None else [payload.decode_base64(image)]
    elif mimetype in payload.IMAGE_TYPES:
        images, fields = [payload.whole_body(request)], request.args
    else:
        raise ApiError(415, "unsupported_media_type",
                       "Send the image as multipart (field 'image') with a 'label' field, or JSON "
                       "{\"image\": <base64 or data URL>, \"label\": <0-9>}.")
    if not images or not images[0]:
        raise ApiError(400, "no_image", "The correction holds no image.")
    if len(images) > 1:
        raise ApiError(400, "too_many_images", "One correction is one image; send each on its own.")
    return images[0], fields


def _digit(value, name, code):
    """A digit 0-9 from a form field (text) or JSON (an integer or its text), or None if absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip() in {str(d) for d in range(NUM_CLASSES)}:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < NUM_CLASSES:
        return value
    raise ApiError(400, code, f"'{name}' must be a digit 0-9.")


def _token(value, name):
    """An id-like text (request_id, source): stored as it is, so no spaces, quotes or control characters."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not SANE_ID.fullmatch(value):
        raise ApiError(400, "invalid_parameter", f"'{name}' must be 1-128 letters, digits or . _ : -")
    return value


class _Chunks(io.RawIOBase):
    """A write-only stream that hands back what was written since the last `take()`; zipfile sees
    it cannot seek and writes each entry's sizes after its data, as streaming requires."""

    def __init__(self):
        super().__init__()
        self._written = []

    def writable(self):
        return True

    def write(self, data):
        self._written.append(bytes(data))
        return len(data)

    def take(self):
        data, self._written = b"".join(self._written), []
        return data


def _zipped(store):
    """The export, chunk by chunk: 0/ ... 9/<id>.<png|jpg> (the stored images) and feedback.csv."""
    chunks = _Chunks()
    manifest = io.StringIO()
    writer = csv.writer(manifest)
    writer.writerow(MANIFEST)
    with zipfile.ZipFile(chunks, "w", zipfile.ZIP_DEFLATED) as zipped:
        for digit in range(NUM_CLASSES):
            zipped.writestr(f"{digit}/", b"")  # every folder, even one with no correction yet
        try:
            for row in store.rows("image", *MANIFEST):
                # Images are compressed already; deflating them again costs time for nothing.
                zipped.writestr(f"{row.label}/{row.id}.{row.image_format}", row.image, zipfile.ZIP_STORED)
                writer.writerow(getattr(row, name) for name in MANIFEST)
                yield chunks.take()
        except StoreUnavailable as e:
            # Raised on, so the zip's directory (written as the `with` closes) is never sent.
            log.error("export cut short: %s", e)
            raise
        zipped.writestr("feedback.csv", manifest.getvalue())
    yield chunks.take()


def _store():
    store = current_app.extensions["feedback_store"]
    if store is None:
        raise ApiError(404, "feedback_disabled", "This server collects no feedback (FEEDBACK_DB=off).")
    return store


@contextmanager
def _database():
    """Storage trouble as the client should see it: 413 for a correction larger than the whole store,
    507 at a cap, 503 when the database fails."""
    try:
        yield
    except TooLarge as e:
        log.warning("correction refused: %s", e)
        raise ApiError(413, "feedback_too_large",
                       f"This image takes more room than the server keeps for all corrections together "
                       f"(FEEDBACK_MAX_BYTES, {current_app.config['FEEDBACK_MAX_BYTES']} bytes); send a smaller one.")
    except StoreFull as e:
        log.warning("correction refused: %s", e)
        raise ApiError(507, "feedback_full",
                       "The server keeps no more corrections (FEEDBACK_MAX_ROWS or FEEDBACK_MAX_BYTES) until its "
                       "operator exports or deletes some.")
    except StoreUnavailable as e:
        log.error("cannot store or read corrections: %s", e)
        raise ApiError(503, "feedback_unavailable",
                       "Corrections cannot be stored right now; predicting works as usual. Try again later.",
                       headers={"Retry-After": "30"})
