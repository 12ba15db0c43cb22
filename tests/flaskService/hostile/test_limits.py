"""Every limit is read from the environment: lowered there, each is refused just above its value."""
import base64

import pytest
from PIL import ImageFile

from flaskService import create_app
from flaskService.config import ConfigError, from_environment
from tests.helpers import assert_error
from tests import corpus
from tests.flaskService.hostile import batches

# MAX_REQUEST_PIXELS: three of the `seven` below, exactly.
LOW = {"MAX_CONTENT_LENGTH": "60000", "MAX_PIXELS": "40000", "MAX_IMAGES": "3", "MAX_FORM_PARTS": "5",
       "MAX_REQUEST_PIXELS": "62016"}


def low_client(predictor, **overrides):
    return create_app({"TESTING": True, "PREDICTOR": predictor, **from_environment({**LOW, **overrides})}).test_client()


@pytest.fixture
def client(predictor):
    return low_client(predictor)


@pytest.fixture
def seven(clear_digits):
    return corpus.png_grey(clear_digits[7][0])[0]  # 152x136: 20,672 pixels, a few kB


def test_at_each_limit_the_request_is_read(client, seven):
    images = [base64.b64encode(seven).decode()] * 3
    response = client.post("/predict", json={"images": images})
    assert response.status_code == 200 and [p["digit"] for p in response.json["predictions"]] == [7] * 3


def test_images_above_max_images(client, seven):
    response = client.post("/predict", json={"images": [base64.b64encode(seven).decode()] * 4})
    assert_error(response, 413, "too_many_images")


def test_pixels_above_max_pixels(client):
    response = client.post("/predict", data=corpus.png_of_zeros(201, 200), content_type="image/png")
    assert_error(response, 413, "too_many_pixels")


@pytest.mark.parametrize("route", batches.ROUTES)
def test_pixels_above_max_request_pixels_are_refused_before_any_decoding(client, seven, route, monkeypatch):
    """Three images within MAX_PIXELS each, 136 pixels over the request's budget together."""
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image))
    data, headers = batches.body(route, [seven, seven, corpus.solid(153, 136, 255)])
    assert_error(client.post(route, data=data, headers=headers), 413, "request_too_many_pixels")
    assert decoded == []


@pytest.mark.parametrize(("route", "body"), (
    ("/predict", {"pixels": [[0] * 784] * 3}),
    ("/read", {"pixels": [[0] * 784] * 3}),
    (batches.V2_MNIST, {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [3, 784], "data": [0] * 2352}]}),
))
def test_pixel_arrays_count_their_784_pixels(predictor, route, body):
    client = low_client(predictor, MAX_REQUEST_PIXELS=str(2 * 784))
    assert_error(client.post(route, json=body), 413, "request_too_many_pixels")


@pytest.mark.parametrize("route", batches.ROUTES)
def test_a_request_past_request_timeout_is_answered_503(predictor, seven, route):
    client = low_client(predictor, REQUEST_TIMEOUT="1e-9")
    data, headers = batches.body(route, [seven] * 2)
    assert_error(client.post(route, data=data, headers=headers), 503, "deadline_exceeded")


def test_the_reader_stops_between_its_steps_past_request_timeout(predictor, seven):
    """One image has no "between images": the reader checks the deadline before each call into the model."""
    response = low_client(predictor, REQUEST_TIMEOUT="1e-9").post("/read", data=seven, content_type="image/png")
    assert_error(response, 503, "deadline_exceeded")


def test_body_above_max_content_length(client):
    response = client.post("/predict", data=bytes(60001), content_type="image/png")
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize(("data", "content_type"), (({"note": ["x"] * 6}, "multipart/form-data"),
                                                    ("&".join(["note=x"] * 6), "application/x-www-form-urlencoded")))
def test_form_parts_above_max_form_parts(client, data, content_type):
    assert_error(client.post("/predict", data=data, content_type=content_type), 413, "payload_too_large")


@pytest.mark.parametrize("name", LOW)
@pytest.mark.parametrize("text", ("0", "-5", "lots", "1.5"))
def test_a_wrong_limit_stops_the_start_with_its_name(name, text):
    with pytest.raises(ConfigError, match=name):
        from_environment({name: text})


@pytest.mark.parametrize("text", ("0", "-1", "soon", "nan"))
def test_a_wrong_request_timeout_stops_the_start(text):
    with pytest.raises(ConfigError, match="REQUEST_TIMEOUT"):
        from_environment({"REQUEST_TIMEOUT": text})
