"""Every limit is read from the environment: lowered there, each is refused just above its value."""
import base64

import pytest

from flaskService import create_app
from flaskService.config import ConfigError, from_environment
from tests.conftest import assert_error
from tests.hostile import corpus

LOW = {"MAX_CONTENT_LENGTH": "60000", "MAX_PIXELS": "40000", "MAX_IMAGES": "3", "MAX_FORM_PARTS": "5"}


@pytest.fixture
def client(predictor):
    return create_app({"TESTING": True, "PREDICTOR": predictor, **from_environment(LOW)}).test_client()


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
