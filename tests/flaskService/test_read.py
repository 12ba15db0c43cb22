"""POST /read: whole numbers, through the real server and through the test client."""
import base64
import io
import json

import numpy as np
import pytest
import requests
from PIL import Image, ImageDraw
from prometheus_client.parser import text_string_to_metric_families

from flaskService.digits.sequence import LINE_HEIGHT
from modelTrain.evalsets.numbers import KINDS, number, printed_set
from modelTrain.evalsets.renders import STYLES
from tests.helpers import assert_error, image_bytes, seed_requests

# Numbers read through the real server: each kind in every style, 2-5 digits. The figures the
# reader reaches on the full evaluation set are in modelTrain/cards/number.json (evaluate_numbers.py).
PER_KIND = 36
# The shipped number model reads these 36 per kind as: separate 35, touching 34, overlapping 33,
# uneven 36, slant 36, and 36 of 36 printed numbers. The floors are about two numbers below, for
# float differences between machines.
PRINTED = 36
LEAST_PRINTED = 34
LEAST = {"separate": 34 / 36, "touching": 32 / 36, "overlapping": 29 / 36, "uneven": 34 / 36, "slant": 34 / 36}


@pytest.fixture(scope="module")
def numbers(mnist):
    return [number(mnist, index, kind, STYLES[index % len(STYLES)], (2, 5))
            for index in range(PER_KIND * len(KINDS)) for kind in [KINDS[index % len(KINDS)]]]


def read(client, data, content_type="image/png", query=""):
    response = client.post("/read" + query, data=data, content_type=content_type)
    assert response.status_code == 200, response.json
    return response.json


def post_number(session, server, sample):
    """A rendered number sent to gunicorn's /read as a raw body of its own image type."""
    return session.post(server.url + "/read", data=sample.data, timeout=30,
                        headers={"Content-Type": "image/jpeg" if "jpeg" in sample.style else "image/png"})


def test_numbers_are_read_through_the_real_server(server, numbers):
    """Rendered numbers of every kind and style, sent as raw bodies to gunicorn: the share read
    exactly right per kind, and every answer well formed (one digit per character, each answered
    as /predict answers an image); 422 no_digits, when no piece looks like a digit, counts as wrong."""
    right = {kind: [] for kind in KINDS}
    confidences = {True: [], False: []}
    with requests.Session() as session:
        for sample in numbers:
            response = post_number(session, server, sample)
            if response.status_code == 422:  # pieces of which none looks like a digit: a wrong answer
                assert response.json()["code"] == "no_digits", response.text
                right[sample.kind].append(False)
                continue
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["text"] == "".join(str(d["digit"]) for d in body["digits"])
            assert 0 < body["confidence"] <= 1
            for digit in body["digits"]:  # each digit answered as /predict answers an image
                assert len(digit["probabilities"]) == 10 and sum(digit["probabilities"]) == pytest.approx(1, abs=1e-4)
                assert digit["confidence"] == max(digit["probabilities"])
                assert digit["digit"] == int(np.argmax(digit["probabilities"]))
                assert digit["digit_score"] is None or 0 <= digit["digit_score"] <= 1
                assert isinstance(digit["is_digit"], bool) and ("reason" in digit) == (not digit["is_digit"])
            right[sample.kind].append(body["text"] == sample.text)
            confidences[body["text"] == sample.text].append(body["confidence"])
    shares = {kind: float(np.mean(values)) for kind, values in right.items()}
    print("exact match per kind", shares, "median confidence when right / wrong",
          np.median(confidences[True]), np.median(confidences[False]))
    assert all(shares[kind] >= least for kind, least in LEAST.items()), shares
    # The number's confidence tells a right reading from a wrong one.
    assert np.median(confidences[False]) < 0.9 < np.median(confidences[True])


def test_printed_numbers_are_read_through_the_real_server(server):
    """Numbers set in fonts training never uses (a meter's counter, an amount on a receipt), in
    every style, sent to gunicorn."""
    right = []
    with requests.Session() as session:
        for sample in printed_set(PRINTED):
            response = post_number(session, server, sample)
            right.append(response.status_code == 200 and response.json()["text"] == sample.text)
    print("printed numbers read exactly", sum(right), "of", len(right))
    assert sum(right) >= LEAST_PRINTED


def test_boxes_are_in_the_uploaded_images_pixels(client, numbers):
    """Each digit's box covers the digit where the generator put it, in the image's own pixels
    (large images are read at a smaller size; the boxes are scaled back)."""
    for sample in [n for n in numbers if n.kind == "separate"][:12]:
        body = read(client, sample.data)
        if body["text"] != sample.text:
            continue  # a misread digit count says nothing about where the boxes are
        for found, truth in zip(body["digits"], sample.boxes):
            assert _overlap(found["box"], truth) >= 0.7, (found["box"], truth)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_large_photo_gives_boxes_in_its_own_pixels(client, mnist, fmt):
    """A 3000 px wide photo is read at 640 px (a JPEG even decoded at a quarter of its size); its
    boxes, and the debug image's, are still in the photo's pixels."""
    sample = number(mnist, 3, "separate", "paper_png", (3, 3))
    picture = Image.open(io.BytesIO(sample.data)).convert("RGB")
    factor = 3000 / picture.width
    big = picture.resize((3000, round(picture.height * factor)), Image.Resampling.BICUBIC)
    body = read(client, image_bytes(big, fmt), query="?debug=1")
    assert body["text"] == sample.text
    for found, truth in zip(body["digits"], sample.boxes):
        assert _overlap(found["box"], [round(v * factor) for v in truth]) >= 0.7
    shown = np.asarray(_png(body["image"]).convert("RGB"), np.int32)
    assert max(shown.shape) == 640
    x, y, w, h = (round(v * 640 / 3000) for v in body["digits"][0]["box"])
    assert _is_red(shown[max(0, y - 2):y + 3, x + w // 2])  # the box is drawn where the digit is


def _overlap(a, b):
    """Intersection over union of two [x, y, w, h] boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0, width) * max(0, height)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_a_single_digit_is_a_one_character_text(client, mnist):
    digit = mnist["x_test"][0]
    body = read(client, image_bytes(255 - digit))
    assert body["text"] == str(mnist["y_test"][0]) and len(body["digits"]) == 1


def test_twelve_separate_digits(client, mnist):
    """A long row: the aligned tops of its 9s and 7s are not a dashed printed rule, nor the stems of
    its 1s a row of box sides (line removal erased them, and it read as 31611321114211)."""
    sample = number(mnist, 7, "separate", "paper_png", (12, 12))
    assert read(client, sample.data)["text"] == sample.text


@pytest.fixture(scope="module")
def clean_number(mnist):
    sample = number(mnist, 0, "separate", "paper_png", (3, 3))
    return sample


@pytest.mark.parametrize("form", list(seed_requests(b"")))
def test_every_input_form(client, clean_number, form):
    """Every form /predict accepts (the same helper builds them; a PNG sent as image/jpeg is still read)."""
    response = client.post("/read", **seed_requests(clean_number.data)[form])
    assert response.status_code == 200, response.json
    assert response.json["text"] == clean_number.text
    assert response.json["model"]["name"] and response.json["model"]["version"]


def test_batches_give_a_reading_per_image_in_order(client, mnist):
    samples = [number(mnist, i, "separate", "canvas_png", (2, 4)) for i in range(3)]
    files = [(io.BytesIO(s.data), f"{i}.png") for i, s in enumerate(samples)]
    by_form = client.post("/read", data={"image": files})
    by_json = client.post("/read", json={"images": [base64.b64encode(s.data).decode() for s in samples]})
    for response in (by_form, by_json):
        assert response.status_code == 200, response.json
        assert [r["text"] for r in response.json["readings"]] == [s.text for s in samples]
        assert "model" in response.json


def test_pixels_are_read_as_a_small_image(client, mnist):
    response = client.post("/read", json={"pixels": mnist["x_test"][1].tolist()})
    assert response.json["text"] == str(mnist["y_test"][1])


def test_debug_returns_the_image_with_boxes_and_each_input(client, clean_number):
    body = read(client, clean_number.data, query="?debug=1")
    picture = _png(body["image"])
    uploaded = Image.open(io.BytesIO(clean_number.data))
    assert picture.size == uploaded.size  # small enough to be returned at its own size
    shown = np.asarray(picture.convert("RGB"), np.int32)
    x, y, w, h = body["digits"][0]["box"]
    assert _is_red(shown[max(0, y - 2):y + 3, x + w // 2])  # the box's top edge is drawn
    for digit in body["digits"]:  # the columns of the line the number model read the digit from
        seen = _png(digit["input"])
        assert seen.size[1] == LINE_HEIGHT and 0 < seen.size[0] < LINE_HEIGHT * 2 and np.asarray(seen).max() > 200
    assert "image" not in read(client, clean_number.data) and "input" not in read(client, clean_number.data)["digits"][0]


def _is_red(pixels):
    """Whether any of these RGB pixels is the boxes' red."""
    return bool(((pixels[..., 0] > 200) & (pixels[..., 1] < 80)).any())


def _png(url):
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(url[len(prefix):])))


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    (dict(data=image_bytes(np.full((60, 200), 255, np.uint8)), content_type="image/png"), 422, "blank_image"),
    (dict(data=image_bytes(np.zeros((60, 200, 4), np.uint8)), content_type="image/png"), 422, "blank_image"),
    (dict(data=b"", content_type="image/png"), 400, "empty_image"),
    (dict(data=b"not an image", content_type="image/png"), 400, "invalid_image"),
    (dict(data=b"%PDF-1.4 ...", content_type="image/png"), 415, "unsupported_image_format"),
    (dict(data=b"x", content_type="text/plain"), 415, "unsupported_media_type"),
    (dict(json={"image": "not*base64"}), 400, "invalid_base64"),
    (dict(data=b"{", content_type="application/json"), 400, "invalid_json"),
    (dict(json={"images": ["AAAA"] * 257}), 413, "too_many_images"),
    (dict(json={"pixels": [[1, 2], [3]]}), 400, "invalid_pixels"),
])
def test_errors(client, kwargs, status, code):
    assert_error(client.post("/read", **kwargs), status, code)


def test_an_error_in_a_batch_names_the_image(client, clean_number):
    blank = base64.b64encode(image_bytes(np.full((40, 40), 255, np.uint8))).decode()
    response = client.post("/read", json={"images": [base64.b64encode(clean_number.data).decode(), blank]})
    assert_error(response, 422, "blank_image")
    assert response.json["error"].startswith("image 1:")


def test_a_long_rule_is_not_a_number(client):
    """A pen line across a wide page holds no digit: 422 no_digits, not a row of 1s."""
    page = Image.new("L", (4000, 300), 255)
    ImageDraw.Draw(page).line([(10, 150), (3990, 150)], fill=0, width=20)
    assert_error(client.post("/read", data=image_bytes(page), content_type="image/png"), 422, "no_digits")


def test_scattered_specks_are_not_a_number(client):
    specks = np.where(np.random.default_rng(0).random((640, 640)) < 0.02, 0, 255).astype(np.uint8)
    assert_error(client.post("/read", data=image_bytes(specks), content_type="image/png"), 422, "no_digits")


def _marked(data, mark):
    """A rendered number with `mark` drawn right of it, apart from its digits."""
    page = Image.open(io.BytesIO(data)).convert("L")
    width, height = page.size
    page = page.crop((0, 0, width + height, height))
    page.paste(255, (width, 0, width + height, height))
    mark(ImageDraw.Draw(page), width + height // 2, height // 2, height)
    return image_bytes(page)


MARKS = {
    "dash": lambda draw, x, y, size: draw.line([(x - size // 4, y), (x + size // 4, y)], fill=0, width=max(2, size // 20)),
    "blob": lambda draw, x, y, size: draw.ellipse([x - size // 12, y - size // 12, x + size // 12, y + size // 12], fill=0),
}


@pytest.mark.parametrize("mark", MARKS)
def test_a_mark_apart_that_is_no_digit_is_not_printed(client, mnist, mark):
    """A dash or a smudge beside a number is left out of the text (the model says it is no digit),
    not printed as a 0 or a 1."""
    for index in range(4):
        sample = number(mnist, index, "separate", "paper_png", (3, 3))
        assert read(client, sample.data)["text"] == sample.text
        assert read(client, _marked(sample.data, MARKS[mark]))["text"] == sample.text


@pytest.mark.parametrize("shape", ["star", "disc"])
def test_nothing_digit_like_is_no_digits(client, shape):
    """Marks that are no digit at all: 422 no_digits, never a made-up number. (Not every mark yet: a
    plus sign is read as a 4 and a zigzag as a row of 1s; see docs/numbers.md.)"""
    page = Image.new("L", (300, 120), 255)
    draw = ImageDraw.Draw(page)
    if shape == "star":
        draw.polygon([(150, 10), (165, 50), (205, 50), (172, 72), (185, 110), (150, 87), (115, 110), (128, 72),
                      (95, 50), (135, 50)], fill=0)
    else:
        draw.ellipse([120, 30, 180, 90], fill=0)
    assert_error(client.post("/read", data=image_bytes(page), content_type="image/png"), 422, "no_digits")


def _stacked(*samples, gap=0.6):
    """Rendered numbers one above the other on one page, apart by `gap` of the taller's height."""
    pages = [Image.open(io.BytesIO(sample.data)).convert("L") for sample in samples]
    space = round(gap * max(page.height for page in pages))
    sheet = Image.new("L", (max(page.width for page in pages), sum(page.height for page in pages) + space * (len(pages) - 1)), 255)
    top = 0
    for page in pages:
        sheet.paste(page, (0, top))
        top += page.height + space
    return image_bytes(sheet)


@pytest.mark.parametrize("count", [2, 3])
def test_lines_one_above_the_other_are_several_lines_not_a_number(client, mnist, count):
    """Two or three numbers written one under the other: 422 several_lines, never one made-up
    number from them all; each line sent alone is read."""
    samples = [number(mnist, index, "separate", "paper_png", (3, 5)) for index in range(count)]
    for sample in samples:
        assert read(client, sample.data)["text"] == sample.text
    response = client.post("/read", data=_stacked(*samples), content_type="image/png")
    assert_error(response, 422, "several_lines")
    assert f"{count} lines" in response.json["error"]


@pytest.mark.parametrize("where", ["dash above", "dot below"])
def test_a_mark_apart_above_or_below_is_left_out(client, mnist, where):
    """A speck or a dash well above or below the number is no line of its own, and it does not
    shrink the number in the strip (it did: one dot made every number unreadable). The digits'
    boxes stay on the number."""
    for index in range(3):
        sample = number(mnist, index, "separate", "paper_png", (3, 5))
        page = Image.open(io.BytesIO(sample.data)).convert("L")
        width, height = page.size
        sheet = Image.new("L", (width, 2 * height), page.getpixel((0, 0)))
        top = height if where == "dash above" else 0
        sheet.paste(page, (0, top))
        draw, size = ImageDraw.Draw(sheet), max(2, height // 20)
        if where == "dash above":
            draw.line([(width // 3, height // 3), (width // 2, height // 3)], fill=0, width=size)
        else:
            draw.ellipse([width // 2, 7 * height // 4, width // 2 + 2 * size, 7 * height // 4 + 2 * size], fill=0)
        reading = read(client, image_bytes(sheet))
        assert reading["text"] == sample.text
        for digit, box in zip(reading["digits"], sample.boxes):
            x, y, w, h = digit["box"]
            assert top <= y and y + h <= top + height


def test_get_is_not_allowed(client):
    assert_error(client.get("/read"), 405)


def test_readings_are_counted_by_length_and_logged(client, clean_number, capsys):
    def count():
        text = client.get("/metrics").data.decode()
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "number_readings_total" and s.labels["length"] == str(len(clean_number.text)))

    before = count()
    capsys.readouterr()
    read(client, clean_number.data)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert count() == before + 1
    assert any(line["path"] == "/read" and line["status"] == 200 for line in lines)
    assert not any("text" in line for line in lines)  # the number itself is not logged: it may be private
