"""POST /predict and the rest of the HTTP surface, through Flask's test client."""
import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers import SHARED_DATA, assert_error, image_bytes, seed_requests

SEED_CANVAS = SHARED_DATA / "seed_canvas.jpeg"


@pytest.fixture(scope="module")
def seed_canvas():
    return SEED_CANVAS.read_bytes()


def assert_prediction(body, digit):
    assert body["digit"] == digit
    assert len(body["probabilities"]) == 10 and abs(sum(body["probabilities"]) - 1) < 1e-4
    assert body["is_digit"] is True and "reason" not in body
    assert body["confidence"] == max(body["probabilities"])
    assert body["model"]["name"] and len(body["model"]["version"]) == 12


@pytest.mark.parametrize("form", list(seed_requests(b"")))
def test_seed_canvas_reads_six_in_every_form(client, seed_canvas, form):
    """The original project's own request, a 6 in a corner, is read as 6 however it is sent."""
    response = client.post("/predict", **seed_requests(seed_canvas)[form])
    assert response.status_code == 200, response.json
    assert_prediction(response.json, 6)


def test_several_files_give_predictions_in_order(client, mnist):
    digits = mnist["x_test"][:3]
    files = [(io.BytesIO(image_bytes(d)), f"{i}.png") for i, d in enumerate(digits)]
    response = client.post("/predict", data={"image": files})
    assert response.status_code == 200
    assert [p["digit"] for p in response.json["predictions"]] == mnist["y_test"][:3].tolist()
    assert "model" in response.json


def test_json_images_list(client, mnist):
    images = [base64.b64encode(image_bytes(d)).decode() for d in mnist["x_test"][:4]]
    response = client.post("/predict", json={"images": images})
    assert [p["digit"] for p in response.json["predictions"]] == mnist["y_test"][:4].tolist()


@pytest.mark.parametrize("scale", [255, 1])
def test_json_pixels(client, mnist, scale):
    """One 28x28 array (0-255 ints or 0-1 floats) gives one prediction."""
    digit = mnist["x_test"][0]
    pixels = digit.tolist() if scale == 255 else (digit / 255).tolist()
    response = client.post("/predict", json={"pixels": pixels})
    assert_prediction(response.json, int(mnist["y_test"][0]))


@pytest.mark.parametrize("preprocess", ["auto", "none"])
def test_json_pixel_batch(client, mnist, preprocess):
    """A list of arrays gives predictions in input order, with or without preprocessing."""
    response = client.post(f"/predict?preprocess={preprocess}", json={"pixels": mnist["x_test"][:32].tolist()})
    digits = [p["digit"] for p in response.json["predictions"]]
    assert np.mean(np.array(digits) == mnist["y_test"][:32]) >= 0.96


def test_debug_returns_the_models_input(client, seed_canvas):
    response = client.post("/predict?debug=1", data=seed_canvas, content_type="image/jpeg")
    header, encoded = response.json["input"].split(",", 1)
    assert header == "data:image/png;base64"
    seen = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert seen.size == (28, 28) and seen.mode == "L"


def test_no_debug_no_input(client, seed_canvas):
    assert "input" not in client.post("/predict", data=seed_canvas, content_type="image/jpeg").json


BLANK = image_bytes(np.zeros((28, 28), np.uint8))


@pytest.mark.parametrize(("request_args", "status", "code"), [
    (dict(data=b"{not json", content_type="application/json"), 400, "invalid_json"),
    (dict(data=b"[" * 5000 + b"]" * 5000, content_type="application/json"), 400, "invalid_json"),
    (dict(json=[1, 2]), 400, "invalid_json"),
    (dict(json={"picture": "x"}), 400, "invalid_json"),
    (dict(json={"image": 5}), 400, "invalid_json"),
    (dict(json={"image": "@@@not base64@@@"}), 400, "invalid_base64"),
    (dict(json={"image": "data:text/plain;base64,aGVsbG8="}), 415, "unsupported_media_type"),
    (dict(json={"image": base64.b64encode(b"garbage bytes").decode()}), 400, "invalid_image"),
    (dict(json={"pixels": [[1, 2], [3, 4]]}), 400, "invalid_pixels"),
    (dict(json={"images": []}), 400, "no_image"),
    (dict(data=b"garbage", content_type="image/png"), 400, "invalid_image"),
    (dict(data=b"", content_type="image/png"), 400, "empty_image"),
    (dict(data=b"II*\x00tiff", content_type="image/tiff"), 415, "unsupported_image_format"),
    (dict(data=b"hello", content_type="text/plain"), 415, "unsupported_media_type"),
    (dict(data=b"hello"), 415, "unsupported_media_type"),
    (dict(data={"other": "x"}, content_type="multipart/form-data"), 400, "no_image"),
    (dict(data=BLANK, content_type="image/png"), 422, "blank_image"),
    (dict(json={"pixels": [[0] * 28] * 28}), 422, "blank_image"),
])
def test_bad_requests(client, request_args, status, code):
    """Every bad input gets its own status and code in the one JSON error shape."""
    response = client.post("/predict", **request_args)
    assert_error(response, status, code)
    assert "Traceback" not in response.json["error"]


def test_too_many_images_is_413(client, mnist):
    response = client.post("/predict", json={"pixels": [mnist["x_test"][0].tolist()] * 257})
    assert_error(response, 413, "too_many_images")


def test_body_over_limit_is_413(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = client.post("/predict", data=b"\x89PNG" + b"0" * 2000, content_type="image/png")
    assert_error(response, 413, "payload_too_large")


def test_batch_error_names_the_image(client, mnist):
    response = client.post("/predict", json={"pixels": [mnist["x_test"][0].tolist(), [[0] * 28] * 28]})
    assert_error(response, 422)
    assert response.json["error"].startswith("image 1:")


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("get", "/nowhere", 404, "not_found"),
    ("get", "/predict", 405, "method_not_allowed"),
    ("put", "/health/ready", 405, "method_not_allowed"),
])
def test_http_errors_are_json(client, method, path, status, code):
    response = getattr(client, method)(path)
    assert_error(response, status, code)
    if status == 405:
        assert "Allow" in response.headers


def test_unexpected_error_is_json_500(app, client):
    """A bug answers 500 in the same shape, without a traceback."""
    def broken(images):
        raise RuntimeError("secret internal detail")

    app.extensions["predictor"] = type("Broken", (), {"predict": staticmethod(broken)})()
    response = client.post("/predict", json={"pixels": [[0] * 14 + [255] * 14] * 28})
    assert_error(response, 500, "internal_error")
    assert "secret" not in json.dumps(response.json)


def test_health(client):
    assert client.get("/health/live").json == {"status": "live"}
    assert client.get("/health/ready").status_code == 200


def test_not_ready_is_503(app, client):
    app.extensions["readiness"].set("the model is loading")
    response = client.get("/health/ready")
    assert_error(response, 503, "not_ready")


def test_model_card(client, predictor):
    card = client.get("/model").json
    assert card["sha256"] == predictor.sha256 and card["version"] == predictor.sha256[:12]
    assert card["backend"] == "litert"
