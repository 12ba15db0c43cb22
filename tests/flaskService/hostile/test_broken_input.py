"""Broken, hostile and out-of-bounds requests to a real gunicorn: the right 4xx JSON, fast, never a 5xx."""
import base64
import json
import time

import numpy as np
import pytest
import requests

from tests.helpers import assert_error
from tests import corpus
from tests.flaskService.hostile.client import post

MIB = 1024 * 1024


def _truncated(encoding):
    def build(digit):
        data = corpus.VALID[encoding](digit)[0]
        return data[:len(data) // 2]
    return build


# name -> (bytes from a clear 7, Content-Type, status, code)
IMAGES = {
    "zero bytes": (lambda d: b"", "image/png", 400, "empty_image"),
    "NUL bytes": (lambda d: bytes(4096), "image/png", 400, "invalid_image"),
    "random bytes": (lambda d: corpus.random_bytes(5000, seed=1), "image/jpeg", 400, "invalid_image"),
    **{f"{fmt} magic only": ((lambda magic: lambda d: magic)(magic), "image/png", 400, "invalid_image")
       for fmt, magic in corpus.MAGIC_ONLY.items()},
    **{f"truncated {name}": (_truncated(name), "image/png", 400, "invalid_image")
       for name in ("png_grey", "jpeg_progressive", "webp_lossy", "bmp_1bit", "png_16bit_grey")},
    "PNG with a bad CRC": (corpus.png_bad_crc, "image/png", 400, "invalid_image"),
    "PNG zTXt bomb": (lambda d: corpus.png_text_bomb(), "image/png", 400, "invalid_image"),
    "TIFF": (corpus.tiff, "image/png", 415, "unsupported_image_format"),
    "ICO": (corpus.ico, "image/png", 415, "unsupported_image_format"),
    "SVG": (lambda d: corpus.SVG, "image/png", 415, "unsupported_image_format"),
    "bare SVG": (lambda d: corpus.SVG_BARE, "image/png", 415, "unsupported_image_format"),
    "PDF": (lambda d: corpus.PDF, "image/png", 415, "unsupported_image_format"),
    "1x1 white": (lambda d: corpus.solid(1, 1, 255), "image/png", 422, "blank_image"),
    "1x1 black": (lambda d: corpus.solid(1, 1, 0), "image/png", 422, "blank_image"),
    "all black": (lambda d: corpus.solid(280, 280, 0), "image/png", 422, "blank_image"),
    "all white JPEG": (lambda d: corpus.solid(300, 200, 255, "JPEG"), "image/jpeg", 422, "blank_image"),
    "PNG 0 wide": (lambda d: corpus.png_of_zeros(0, 10), "image/png", 400, "invalid_image"),
    "100-megapixel PNG": (lambda d: corpus.png_of_zeros(10000, 10000), "image/png", 422, "decompression_bomb"),
    "4-gigapixel GIF screen": (lambda d: corpus.gif_screen_bomb(), "image/gif", 422, "decompression_bomb"),
    "900-megapixel BMP header": (lambda d: corpus.bmp_header_bomb(), "image/bmp", 422, "decompression_bomb"),
    "3.6-gigapixel JPEG header": (corpus.jpeg_header_bomb, "image/jpeg", 422, "decompression_bomb"),
    "20-megapixel PNG": (lambda d: corpus.png_of_zeros(5000, 4000), "image/png", 413, "too_many_pixels"),
    "16-megapixel 1-pixel-wide strip": (lambda d: corpus.png_of_zeros(1, 16_000_001), "image/png",
                                        413, "too_many_pixels"),
    "black 16 megapixels, at the limit": (lambda d: corpus.png_of_zeros(4000, 4000, 8), "image/png",
                                          422, "blank_image"),
    "16000000x1 strip, at the limit": (lambda d: corpus.png_of_zeros(16_000_000, 1), "image/png",
                                       422, "implausible_image"),
}


@pytest.mark.parametrize("name", IMAGES)
def test_broken_image_body(service, clear_digits, name):
    build, content_type, status, code = IMAGES[name]
    response = post(service, data=build(clear_digits[7][0]), headers={"Content-Type": content_type})
    assert_error(response, status, code)


def test_a_strip_no_digit_fits_in_is_refused_before_decoding(service):
    """1x16,000,000 is within MAX_PIXELS, but decoding its 16 million PNG rows takes Pillow 1-2 s of a
    worker for a 31 kB upload. Nothing 1 pixel wide holds a digit: refuse it from the header."""
    started = time.monotonic()
    response = requests.post(service.url + "/predict", data=corpus.png_of_zeros(1, 16_000_000),
                             headers={"Content-Type": "image/png"}, timeout=10)
    assert time.monotonic() - started < 1
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)


@pytest.mark.parametrize(("content_type", "status", "code"), (
    ("application/octet-stream", 415, "unsupported_media_type"),
    ("text/plain", 415, "unsupported_media_type"),
    ("image/svg+xml", 415, "unsupported_image_format"),
    ("image/tiff", 415, "unsupported_image_format"),
    ("", 415, "unsupported_media_type"),
))
def test_body_with_a_content_type_that_is_not_served(service, clear_digits, content_type, status, code):
    data = corpus.png_grey(clear_digits[7][0])[0]
    assert_error(post(service, data=data, headers={"Content-Type": content_type}), status, code)


def test_body_over_max_content_length(service):
    assert_error(post(service, data=bytes(4 * MIB + 1), headers={"Content-Type": "image/png"}),
                 413, "payload_too_large")


@pytest.mark.parametrize("content_type", ("image/png", "application/json", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=b"))
def test_chunked_body_over_max_content_length(service, content_type):
    """No Content-Length to check up front: the limit still holds while the body streams in."""
    chunks = (b"-" * MIB for _ in range(6))
    assert_error(post(service, data=chunks, headers={"Content-Type": content_type}), 413, "payload_too_large")


def test_chunked_v2_body_over_max_content_length(service):
    chunks = (b"-" * MIB for _ in range(6))
    response = requests.post(service.url + "/v2/models/mnist/infer", data=chunks,
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert_error(response, 413, "payload_too_large")


def test_chunked_body_under_max_content_length_is_read(service, clear_digits):
    data = corpus.png_grey(clear_digits[3][0])[0]
    chunks = (data[i:i + 100] for i in range(0, len(data), 100))
    response = post(service, data=chunks, headers={"Content-Type": "image/png"})
    assert response.status_code == 200 and response.json()["digit"] == 3


def _pixels(value):
    return json.dumps({"pixels": value})


ZEROS = [[0] * 28] * 28
DIAGONAL = np.eye(28, dtype=int).tolist()

# name -> (raw JSON body, status, code)
JSON_BODIES = {
    "not JSON": ("{'pixels': 1}", 400, "invalid_json"),
    "invalid UTF-8": (b'{"image": "\xff\xfe"}', 400, "invalid_json"),
    "a list": ("[1, 2]", 400, "invalid_json"),
    "a string": ('"iVBORw0KGgo="', 400, "invalid_json"),
    "null": ("null", 400, "invalid_json"),
    "empty object": ("{}", 400, "invalid_json"),
    "two fields": (json.dumps({"image": "", "pixels": ZEROS}), 400, "invalid_json"),
    "array nested 100000 deep": ('{"pixels": ' + "[" * 100000 + "]" * 100000 + "}", 400, "invalid_json"),
    "object nested 100000 deep": ('{"pixels": ' + '{"a":' * 100000 + "1" + "}" * 100001, 400, "invalid_json"),
    "pixels nested 900 deep": (_pixels(json.loads("[" * 900 + "]" * 900)), 400, "invalid_pixels"),
    "pixels 27x28": (_pixels([[0] * 28] * 27), 400, "invalid_pixels"),
    "pixels 785 flat": (_pixels([0] * 785), 400, "invalid_pixels"),
    "pixels 28x28x3": (_pixels([[[0, 0, 0]] * 28] * 28), 400, "invalid_pixels"),
    "pixels ragged": (_pixels([[0] * 28] * 27 + [[0] * 5]), 400, "invalid_pixels"),
    "pixels empty": (_pixels([]), 400, "invalid_pixels"),
    "pixels a number": (_pixels(7), 400, "invalid_pixels"),
    "pixels a string": (_pixels("7"), 400, "invalid_pixels"),
    "pixels strings": (_pixels([["0"] * 28] * 28), 400, "invalid_pixels"),
    "pixels booleans": (_pixels([[True] * 28] * 28), 400, "invalid_pixels"),
    "pixels nulls": (_pixels([[None] * 28] * 28), 400, "invalid_pixels"),
    "pixels objects": (_pixels([[{}] * 28] * 28), 400, "invalid_pixels"),
    "pixels NaN (not JSON)": ('{"pixels": [' + ",".join(["NaN"] * 784) + "]}", 400, "invalid_json"),
    "pixels Infinity (not JSON)": ('{"pixels": [' + ",".join(["Infinity"] * 784) + "]}", 400, "invalid_json"),
    "pixels 1e999 (not JSON)": ('{"pixels": [' + ",".join(["1e999"] * 784) + "]}", 400, "invalid_json"),
    "pixels huge integers (beyond 64 bits: refused by the parser)": (_pixels([10 ** 400] * 784), 400, "invalid_json"),
    "pixels negative": (_pixels([[-1] * 28] * 28), 400, "invalid_pixels"),
    "pixels over 255": (_pixels([[256] * 28] * 28), 400, "invalid_pixels"),
    "pixels all zero": (_pixels(ZEROS), 422, "blank_image"),
    "257 pixel arrays": (_pixels([DIAGONAL] * 257), 413, "too_many_images"),
    "690,000 tiny images": (json.dumps({"images": ["AA"] * 690_000}), 413, "too_many_images"),
    "images not a list": (json.dumps({"images": "abc"}), 400, "invalid_json"),
    "images empty": (json.dumps({"images": []}), 400, "no_image"),
    "images of numbers": (json.dumps({"images": [1, 2]}), 400, "invalid_json"),
    "image a number": (json.dumps({"image": 7}), 400, "invalid_json"),
    "image empty string": (json.dumps({"image": ""}), 400, "empty_image"),
    "bad base64": (json.dumps({"image": "iVBORw0KGgo!!!"}), 400, "invalid_base64"),
    "base64 padding inside": (json.dumps({"image": "iVBO=Rw0KGgo"}), 400, "invalid_base64"),
    "base64 of random bytes": (json.dumps({"image": base64.b64encode(corpus.random_bytes(300, 2)).decode()}),
                               400, "invalid_image"),
    "data URL of HTML": (json.dumps({"image": "data:text/html;base64,PGh0bWw+"}), 415, "unsupported_media_type"),
    "data URL of SVG": (json.dumps({"image": "data:image/svg+xml;base64," + base64.b64encode(corpus.SVG).decode()}),
                        415, "unsupported_media_type"),
    "data URL without type": (json.dumps({"image": "data:;base64,iVBORw0KGgo="}), 415, "unsupported_media_type"),
    "data URL not base64": (json.dumps({"image": "data:image/png,%89PNG"}), 400, "invalid_base64"),
    "data URL of a PDF": (json.dumps({"image": "data:application/pdf;base64," + base64.b64encode(corpus.PDF).decode()}),
                          415, "unsupported_media_type"),
    "body over 4 MiB": (json.dumps({"pixels": [0] * (2 * MIB + 1)}), 413, "payload_too_large"),
}


@pytest.mark.parametrize("name", JSON_BODIES)
def test_broken_json_body(service, name):
    body, status, code = JSON_BODIES[name]
    assert_error(post(service, data=body, headers={"Content-Type": "application/json"}), status, code)


def test_too_many_images_is_refused_before_any_is_decoded(service, clear_digits):
    image = base64.b64encode(corpus.png_grey(clear_digits[1][0])[0]).decode()
    response = post(service, json={"images": [image] * 257})
    assert_error(response, 413, "too_many_images")


def test_the_largest_batch_is_answered(service, clear_digits):
    image = base64.b64encode(corpus.png_grey(clear_digits[1][0])[0]).decode()
    response = requests.post(service.url + "/predict", json={"images": [image] * 256}, timeout=30)
    assert response.status_code == 200
    assert [p["digit"] for p in response.json()["predictions"]] == [1] * 256


WHITE_PNG = corpus.solid(28, 28, 255)  # a valid image: what these forms get wrong is the form itself

# name -> (requests keyword arguments, status, code)
FORMS = {
    "multipart without a file": ({"files": {"note": (None, "hello")}}, 400, "no_image"),
    "multipart with an empty file": ({"files": {"image": ("digit.png", b"", "image/png")}}, 400, "empty_image"),
    "multipart with a file under another name": ({"files": {"picture": ("d.png", WHITE_PNG, "image/png")}},
                                                 400, "no_image"),
    "multipart with 257 images": ({"files": [("image", ("d.png", WHITE_PNG, "image/png"))] * 257}, 413,
                                  "too_many_images"),
    "multipart with 5000 parts": ({"files": [("x", (None, "1"))] * 5000}, 413, "payload_too_large"),
    "multipart without a boundary": ({"data": b"--x\r\n\r\n", "headers": {"Content-Type": "multipart/form-data"}},
                                     400, None),
    "multipart cut short": ({"data": b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
                                     b"Content-Type: image/png\r\n\r\n\x89PNG\r\n",
                             "headers": {"Content-Type": "multipart/form-data; boundary=b"}}, 400, None),
    "urlencoded without an image": ({"data": {"name": "seven"}}, 400, "no_image"),
    "urlencoded with 5000 fields": ({"data": [("x", "1")] * 5000}, 413, "payload_too_large"),
    "urlencoded with bad base64": ({"data": {"image": "%%%not-base64"}}, 400, "invalid_base64"),
    "urlencoded with a text data URL": ({"data": {"image": "data:text/plain;base64,aGVsbG8="}}, 415,
                                        "unsupported_media_type"),
    "urlencoded with 4 MiB of ampersands": ({"data": "&" * (4 * MIB - 1),
                                             "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
                                            413, "payload_too_large"),
    "urlencoded with a 600 kB field of zeros": ({"data": {"image": "A" * 600_000}}, 400, "invalid_image"),
    "multipart text field over 500 kB": ({"files": {"image": (None, "A" * 600_000)}}, 413, "payload_too_large"),
}


@pytest.mark.parametrize("name", FORMS)
def test_broken_form(service, name):
    kwargs, status, code = FORMS[name]
    assert_error(post(service, **kwargs), status, code)


@pytest.mark.parametrize(("query", "code"), (("preprocess=maybe", "invalid_parameter"),))
def test_bad_query_parameter(service, clear_digits, query, code):
    data = corpus.png_grey(clear_digits[7][0])[0]
    response = post(service, params=query, data=data, headers={"Content-Type": "image/png"})
    assert_error(response, 400, code)


def test_service_is_ready_and_correct_after_the_corpus(service, clear_digits):
    """Nothing above has wedged a worker: still ready, still reading digits right."""
    assert requests.get(service.url + "/health/ready", timeout=5).status_code == 200
    for digit in range(10):
        data = corpus.png_grey(clear_digits[digit][0])[0]
        assert post(service, data=data, headers={"Content-Type": "image/png"}).json()["digit"] == digit
