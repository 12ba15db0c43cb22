"""A /predict request -> the list of 28x28 arrays it holds, whatever form the client sent them in.

Accepted: multipart files or data-URL/base64 text fields (`image`, or `file` as the original page
sent), a raw image body, or JSON (`image`, `images`, `pixels`). Anything else is a clear 4xx.
"""
import base64
import binascii
import re

import numpy as np
import orjson
from PIL import Image
from werkzeug.exceptions import RequestEntityTooLarge

from . import deadline
from .digits import preprocess
from .digits.errors import ImageError
from .errors import ApiError

IMAGE_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/gif", "image/bmp", "image/x-ms-bmp", "image/webp"}
FIELDS = ("image", "file")
_DATA_URL = re.compile(r"data:([^;,]*)(;[^,]*)?,", re.IGNORECASE)


class Payload:
    """The images of one request: `arrays` ((N, 28, 28) float32) and whether the client sent a list."""

    def __init__(self, arrays, is_list):
        self.arrays = arrays
        self.is_list = is_list


def read(request, max_images, max_pixels, max_request_pixels):
    """Parse `request` into a Payload, or raise ApiError (ImageError, from the core) saying what is wrong with it."""
    raw = request.args.get("preprocess", "auto")
    if raw not in ("auto", "none"):
        raise ApiError(400, "invalid_parameter", "preprocess must be 'auto' or 'none'.")
    skip = raw == "none"
    items, is_list = _items(request, max_images)
    check_pixels(items, max_pixels, max_request_pixels, is_list)
    if not is_list:
        return Payload(_to_array(items[0], skip, max_pixels)[None], False)
    if not isinstance(items[0], bytes):
        try:
            batch = preprocess.pixel_batch(items)
            return Payload(batch if skip else preprocess.centre_batch(batch), True)
        except ImageError:
            pass  # one array is at fault: the image-by-image path below says which
    return Payload(each_image(items, lambda item: _to_array(item, skip, max_pixels)), True)


def read_items(request, max_images, max_pixels, max_request_pixels):
    """For /read, which needs the whole picture, not 28x28 arrays: the request's images as sent
    (`to_image` decodes one), once their pixels are within budget, and whether the client sent a list."""
    items, is_list = _items(request, max_images)
    check_pixels(items, max_pixels, max_request_pixels, is_list)
    return items, is_list


def to_image(item, max_pixels):
    """One image as sent -> a decoded Pillow image (a pixel array becomes a greyscale image)."""
    if isinstance(item, bytes):
        return preprocess.decode_image(item, max_pixels)
    return Image.fromarray(np.round(preprocess.pixels_to_array(item) * 255).astype(np.uint8), "L")


def check_pixels(items, max_pixels, max_request_pixels, is_list=True):
    """check_budget for the images as sent, read from their headers before any is decoded (a pixel
    array counts its 784)."""
    def pixels(item):
        if isinstance(item, bytes):
            image = preprocess.open_image(item, max_pixels)  # opened again to decode: 12 us, and none held
            return image.width * image.height
        return preprocess.SIZE * preprocess.SIZE  # any other size is refused before the work

    check_budget(sum(each_item(items, pixels) if is_list else [pixels(items[0])]), max_request_pixels)


def check_budget(total, max_request_pixels):
    """413 request_too_many_pixels if one request's images decode to more than `max_request_pixels` in all."""
    if total > max_request_pixels:
        raise ApiError(413, "request_too_many_pixels",
                       f"The request's images hold {total:,} pixels in all; the limit per request is "
                       f"{max_request_pixels:,} (MAX_REQUEST_PIXELS). Send them in several requests.")


def _items(request, max_images):
    """The request's images as sent: encoded bytes or pixel arrays (nested lists), and whether a list."""
    mimetype = request.mimetype
    if mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        items, is_list = from_form(request)
    elif mimetype in IMAGE_TYPES:
        items, is_list = [whole_body(request)], False
    elif mimetype == "application/json" or mimetype.endswith("+json"):
        items, is_list = _from_json(whole_body(request), max_images)
    elif mimetype.startswith("image/"):
        raise ApiError(415, "unsupported_image_format",
                       f"{mimetype} is not supported; send PNG, JPEG, GIF, BMP or WebP.")
    else:
        raise ApiError(415, "unsupported_media_type",
                       "Send an image (multipart field 'image', or a raw image/png|jpeg|gif|bmp|webp body) "
                       "or JSON with 'image', 'images' or 'pixels'.")
    if not items:
        raise ApiError(400, "no_image", "The request holds no image.")
    check_count(len(items), max_images)
    return items, is_list


def each_image(items, to_array):
    """`to_array` of every item of a list, stacked; an error says which image it is about."""
    return np.stack(each_item(items, to_array))


def each_item(items, convert):
    """`convert` of every item of a list, one after the other, while the request has time; an error
    says which image it is about."""
    converted = []
    for index, item in enumerate(items):
        deadline.check()
        try:
            converted.append(convert(item))
        except ImageError as e:
            e.message = f"image {index}: {e.message}"
            raise
    return converted


def _to_array(item, skip, max_pixels):
    if isinstance(item, bytes):
        if skip:
            return _mnist_image(item, max_pixels)
        return preprocess.preprocess_image(item, max_pixels)
    return preprocess.pixels_to_array(item) if skip else preprocess.preprocess_pixels(item)


def _mnist_image(data, max_pixels):
    """preprocess=none on an encoded image: it must already be a 28x28 MNIST-style picture."""
    image = preprocess.decode_image(data, max_pixels)
    if image.size != (preprocess.SIZE, preprocess.SIZE):
        raise ApiError(400, "invalid_image", f"preprocess=none needs a 28x28 image; got {image.size[0]}x{image.size[1]}.")
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def whole_body(request):
    """The whole body, or 413. Werkzeug stops reading a chunked body (no Content-Length) silently at
    MAX_CONTENT_LENGTH; without this check its first 4 MiB would be parsed as if they were all of it."""
    data = request.get_data()
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    return data


def from_form(request):
    if request.mimetype == "application/x-www-form-urlencoded":
        # Werkzeug bounds only multipart forms by MAX_FORM_PARTS; 4 MiB of "&&&..." would be two
        # million fields and seconds of parsing. The body is cached, so the form is parsed from it.
        if whole_body(request).count(b"&") >= request.max_form_parts:
            raise RequestEntityTooLarge()
    files = [f for field in FIELDS for f in request.files.getlist(field)]
    texts = [t for field in FIELDS for t in request.form.getlist(field)]
    items = [f.read() for f in files] + [decode_base64(t) for t in texts]
    return items, len(items) > 1


def check_count(count, max_images):
    if count > max_images:
        raise ApiError(413, "too_many_images", f"{count} images in one request; the limit is {max_images}.")


def parse_json(body, message):
    """Body bytes -> the JSON value, or 400 invalid_json with `message`."""
    try:
        # orjson: a 256-digit pixel batch parses in ~1.5 ms instead of ~7; it also refuses NaN and
        # nesting deeper than 1024, which the standard library lets through or overflows on.
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", message)


def _from_json(body, max_images):
    document = parse_json(body, "The body is not valid JSON.")
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_json", "The JSON body must be an object with 'image', 'images' or 'pixels'.")
    keys = [k for k in ("image", "images", "pixels") if k in document]
    if len(keys) != 1:
        raise ApiError(400, "invalid_json", "The JSON object needs exactly one of 'image', 'images' or 'pixels'.")
    value = document[keys[0]]
    if keys[0] == "image":
        return [_image_string(value)], False
    if keys[0] == "images":
        if not isinstance(value, list):
            raise ApiError(400, "invalid_json", "'images' must be a list of base64 strings or data URLs.")
        check_count(len(value), max_images)  # before decoding: 4 MiB hold 700,000 tiny strings
        return [_image_string(v) for v in value], True
    # pixels: one 28x28 array, or a list of them (a 3-level nesting, or a list of flat 784s)
    if _is_list_of_arrays(value):
        return value, True
    return [value], False


def _is_list_of_arrays(value):
    """[[...784 numbers], ...] or [[[28 numbers] x 28], ...] -- but not one 28x28x1 array."""
    if not (isinstance(value, list) and value and isinstance(value[0], list) and value[0]):
        return False
    first = value[0][0]
    return len(value[0]) == 784 or (isinstance(first, list) and len(first) != 1)


def _image_string(value):
    if not isinstance(value, str):
        raise ApiError(400, "invalid_json", "An image in JSON must be a base64 string or a data URL.")
    return decode_base64(value)


def decode_base64(text):
    """Base64 or a `data:image/...;base64,` URL -> bytes."""
    match = _DATA_URL.match(text)
    if match:
        mediatype = match.group(1).lower()
        if mediatype not in IMAGE_TYPES:
            raise ApiError(415, "unsupported_media_type",
                           f"The data URL holds {mediatype or 'no type'}; an image (PNG, JPEG, GIF, BMP, WebP) is expected.")
        if "base64" not in (match.group(2) or "").lower():
            raise ApiError(400, "invalid_base64", "The data URL must be base64-encoded (data:image/png;base64,...).")
        text = text[match.end():]
    # A "+" sent unescaped in a urlencoded form arrives as a space; base64 never holds spaces.
    text = "".join(text.replace(" ", "+").split())
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if "-" in text or "_" in text else None,
                                validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_base64", "The image is not valid base64.")
