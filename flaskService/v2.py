"""The Open Inference Protocol (V2, as KServe, Triton and MLServer speak it) for the model `mnist`.

Inputs: one tensor, FP32 (pixels 0-1) or UINT8 (0-255), shaped [N,28,28], [N,28,28,1] or [N,784],
MNIST-style white ink on black and used as sent; or BYTES [N], each element an encoded image (PNG,
JPEG, ...) that goes through the same preprocessing as /predict. Outputs: `probabilities` FP32
[N,10], `digit` INT64 [N] and `is_digit` BOOL [N] (whether the image holds one digit: /predict's
is_digit, at the same MIN_DIGIT_SCORE).

Tensor data comes as JSON (`data`, flat or nested) or, with the binary tensor data extension that
tritonclient uses by default, as raw little-endian bytes after the JSON header, whose length the
Inference-Header-Content-Length header gives; a body may be gzip- or deflate-compressed
(Content-Encoding). Errors are `{"error": ...}` (plus our `code` and
`status`), with a 4xx status.

A second model, `mnist-number`, reads whole numbers as POST /read does: input BYTES [N] of encoded
images; outputs `text` BYTES [N] (the digits read, left to right), `confidence` FP32 [N] (that the
whole text is right) and, per digit, `digits` INT64 [N, L], `digit_confidences` FP32 [N, L] and
`boxes` INT64 [N, L, 4] ([x, y, w, h] in the image's pixels), L being the batch's longest number:
shorter numbers are padded with -1 (digits, boxes) and 0 (confidences).

JSON goes through orjson: a 256-image FP32 batch is 200,000 numbers, which the standard library
parses in ~50 ms and orjson in ~3 ms.
"""
import struct
import zlib

import numpy as np
import orjson
from flask import Blueprint, Response, current_app, request

from . import metrics, payload
from .digits import preprocess
from .digits.model import INPUT_SHAPE, NUM_CLASSES
from .errors import ApiError

bp = Blueprint("v2", __name__, url_prefix="/v2")

MODEL = "mnist"
HEADER_LENGTH = "Inference-Header-Content-Length"
PIXELS = preprocess.SIZE * preprocess.SIZE
NUMERIC = {"FP32": (np.dtype("<f4"), 1.0), "UINT8": (np.dtype("u1"), 255.0)}  # dtype, full scale
OUTPUTS = ("probabilities", "digit", "is_digit")
NUMBER_MODEL = "mnist-number"
NUMBER_OUTPUTS = ("text", "confidence", "digits", "digit_confidences", "boxes")


@bp.get("")
def server_metadata():
    return {"name": "flaskService", "version": "1", "extensions": ["binary_tensor_data"]}


@bp.get("/health/live")
def server_live():
    return {"live": True}


@bp.get("/health/ready")
def server_ready():
    current_app.extensions["readiness"].require()
    return {"ready": True}


@bp.get("/models/<model_name>")
@bp.get("/models/<model_name>/versions/<model_version>")
def model_metadata(model_name, model_version=None):
    predictor = _model(model_name, model_version)
    if model_name == NUMBER_MODEL:
        return _number_metadata(predictor)
    return {
        "name": MODEL,
        "versions": [predictor.version],
        "platform": "tflite" if predictor.backend == "litert" else "keras",
        "inputs": [{"name": "images", "datatype": "FP32", "shape": [-1, *INPUT_SHAPE]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, NUM_CLASSES]},
                    {"name": "digit", "datatype": "INT64", "shape": [-1]},
                    {"name": "is_digit", "datatype": "BOOL", "shape": [-1]}],
    }


@bp.get("/models/<model_name>/ready")
@bp.get("/models/<model_name>/versions/<model_version>/ready")
def model_ready(model_name, model_version=None):
    _model(model_name, model_version)
    current_app.extensions["readiness"].require()
    return {"name": NUMBER_MODEL if model_name == NUMBER_MODEL else MODEL, "ready": True}


@bp.post("/models/<model_name>/infer")
@bp.post("/models/<model_name>/versions/<model_version>/infer")
def infer(model_name, model_version=None):
    predictor = _model(model_name, model_version)
    if model_name == NUMBER_MODEL:
        return _infer_number(predictor)
    with metrics.stage("preprocess"):
        document, binary = _split_body(_decompressed(payload.whole_body(request)))
        images = _read_input(document, binary, current_app.config)
        wanted = _requested_outputs(document)
    with metrics.stage("inference"):
        answers = predictor.classify(images, current_app.config["MIN_DIGIT_SCORE"])
    metrics.record_answers(answers)
    tensors = {"probabilities": ("FP32", answers.probabilities.astype("<f4")),
               "digit": ("INT64", answers.digits.astype("<i8")), "is_digit": ("BOOL", answers.is_digit)}
    return _response(document, predictor.version, tensors, wanted)


def _response(document, version, tensors, wanted, model=MODEL):
    """The inference response: JSON, or JSON then the binary outputs' bytes in the order listed."""
    header = {"model_name": model, "model_version": version}
    if "id" in document:
        header["id"] = document["id"]
    header["outputs"], chunks = [], []
    for name, as_binary in wanted:
        datatype, array = tensors[name]
        output = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if as_binary:
            chunks.append(_bytes_data(array) if datatype == "BYTES" else array.tobytes())
            output["parameters"] = {"binary_data_size": len(chunks[-1])}
        else:
            output["data"] = [item.decode() for item in array.ravel()] if datatype == "BYTES" else array.ravel()
        header["outputs"].append(output)
    body = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return Response(body, mimetype="application/json")
    response = Response(body + b"".join(chunks), mimetype="application/octet-stream")
    response.headers[HEADER_LENGTH] = str(len(body))
    return response


def _model(name, version):
    predictor = current_app.extensions["predictor"]
    if name not in (MODEL, predictor.name, NUMBER_MODEL):
        raise ApiError(404, "model_not_found",
                       f"No model named {name!r}; this server serves {MODEL!r} and {NUMBER_MODEL!r}.")
    if name == NUMBER_MODEL:
        name, predictor = NUMBER_MODEL, current_app.extensions["number_predictor"]
    else:
        name = MODEL
    if version is not None and version != predictor.version:
        raise ApiError(404, "model_version_not_found",
                       f"Model {name!r} has no version {version!r}; it has {predictor.version!r}.")
    return predictor


def _decompressed(body):
    """tritonclient can gzip or deflate its requests (request_compression_algorithm): inflate them,
    but never past MAX_CONTENT_LENGTH, so a small compressed bomb cannot fill the memory."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise ApiError(415, "unsupported_content_encoding",
                       f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or none.")
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise ApiError(400, "invalid_content_encoding", f"The body is not valid {encoding} data.")
    if len(data) > limit:
        raise ApiError(413, "payload_too_large",
                       f"The inflated body is larger than {limit} bytes (MAX_CONTENT_LENGTH).")
    return data


def _split_body(body):
    """The body -> (the JSON request object, the binary tensor data that follows it)."""
    length = request.headers.get(HEADER_LENGTH)
    if length is None:
        header, binary = body, b""
    else:
        if not (length.isascii() and length.isdigit() and 0 < int(length) <= len(body)):
            raise ApiError(400, "invalid_header_length",
                           f"{HEADER_LENGTH} must be the length of the JSON header, 1-{len(body)} bytes; "
                           f"got {length!r}.")
        header, binary = body[:int(length)], body[int(length):]
    document = payload.parse_json(header, "The inference request is not valid JSON.")
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_request", "The inference request must be a JSON object.")
    if "id" in document and not isinstance(document["id"], str):
        raise ApiError(400, "invalid_request", "'id' must be a string.")
    return document, binary


def _read_input(document, binary, config, decode=False):
    """The request's one input tensor -> (N, 28, 28) float32 in [0, 1], MNIST-style (with `decode`,
    BYTES only: the encoded images, their pixels within budget but none decoded yet)."""
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ApiError(400, "invalid_request", "'inputs' must hold exactly one tensor (the images).")
    tensor = inputs[0]
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if not (isinstance(shape, list) and shape and all(type(d) is int and d >= 0 for d in shape)):
        raise ApiError(400, "invalid_shape", "The input's 'shape' must be a list of non-negative integers.")
    count = shape[0]
    if count == 0:
        raise ApiError(400, "no_image", "The input tensor holds no image (its batch size is 0).")
    payload.check_count(count, config["MAX_IMAGES"])

    if datatype == "BYTES":
        return _encoded_images(tensor, binary, shape, config, decode)
    if datatype not in NUMERIC:
        raise ApiError(400, "unsupported_datatype",
                       f"The input's datatype must be FP32, UINT8 or BYTES (encoded images); got {datatype!r}.")
    return _pixel_images(tensor, binary, datatype, shape, config)


def _encoded_images(tensor, binary, shape, config, decode=False):
    """BYTES [N]: encoded images, each preprocessed exactly as /predict preprocesses an upload (or,
    with `decode`, left encoded for the reader to decode one at a time, as /read does)."""
    count = shape[0]
    if shape not in ([count], [count, 1]):
        raise ApiError(400, "invalid_shape",
                       f"A BYTES input holds one encoded image per element: shape [N]; got {shape}.")
    elements = _bytes_elements(tensor, binary, count)
    max_pixels = config["MAX_PIXELS"]
    payload.check_pixels(elements, max_pixels, config["MAX_REQUEST_PIXELS"])
    if decode:
        return elements
    return payload.each_image(elements, lambda data: preprocess.preprocess_image(data, max_pixels))


def _pixel_images(tensor, binary, datatype, shape, config):
    """FP32 or UINT8 pixels, already MNIST-style: scaled to [0, 1] as the datatype says, used as sent."""
    count = shape[0]
    if tuple(shape[1:]) not in preprocess.PIXEL_SHAPES:
        raise ApiError(400, "invalid_shape",
                       f"An {datatype} input must be shaped [N,28,28], [N,28,28,1] or [N,784]; got {shape}.")
    size = count * PIXELS
    payload.check_budget(size, config["MAX_REQUEST_PIXELS"])
    dtype, scale = NUMERIC[datatype]
    raw = _binary_part(tensor, binary)
    if raw is not None:
        if len(raw) != size * dtype.itemsize:
            raise ApiError(400, "invalid_binary_data",
                           f"{datatype} {shape} needs {size * dtype.itemsize} bytes of binary data; got {len(raw)}.")
        array = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    else:
        array = _json_numbers(tensor, size)
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > scale:
        raise ApiError(400, "invalid_pixels", f"{datatype} pixel values must lie in [0, {scale:g}].")
    if datatype == "UINT8" and raw is None and not np.array_equal(array, np.round(array)):
        raise ApiError(400, "invalid_pixels", "UINT8 pixel values must be whole numbers.")
    return (array / scale if scale != 1.0 else array).reshape(count, preprocess.SIZE, preprocess.SIZE)


def _binary_part(tensor, binary):
    """This input's bytes from the binary section, or None if its data is in the JSON."""
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ApiError(400, "invalid_request", "The input's 'parameters' must be an object.")
    size = parameters.get("binary_data_size")
    if size is None:
        if binary:
            raise ApiError(400, "invalid_binary_data",
                           "Binary data follows the JSON header, but no input declares binary_data_size.")
        return None
    if type(size) is not int or size != len(binary):
        raise ApiError(400, "invalid_binary_data",
                       f"binary_data_size is {size!r}, but {len(binary)} bytes follow the JSON header.")
    return binary


def _json_numbers(tensor, size):
    if "data" not in tensor:
        raise ApiError(400, "invalid_request", "The input has neither 'data' nor binary_data_size.")
    try:
        array = np.asarray(tensor["data"], dtype=np.float32).ravel()
    except (ValueError, TypeError):
        raise ApiError(400, "invalid_data",
                       "The input's 'data' must be a list of numbers (flat or nested to match 'shape').")
    if array.size != size:
        raise ApiError(400, "invalid_data", f"The input's shape needs {size} values; 'data' holds {array.size}.")
    return array


def _bytes_elements(tensor, binary, count):
    """A BYTES tensor -> its elements as bytes: from the binary section (each a 4-byte little-endian
    length, then the bytes), or from JSON strings holding base64 or data URLs."""
    raw = _binary_part(tensor, binary)
    if raw is None:
        data = tensor.get("data")
        if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
            raise ApiError(400, "invalid_data", "A BYTES input in JSON must be a list of base64 strings or data URLs.")
        elements = [payload.decode_base64(item) for item in data]
    else:
        elements, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise ApiError(400, "invalid_binary_data", "BYTES data ends inside an element's 4-byte length.")
            (length,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            if offset + length > len(raw):
                raise ApiError(400, "invalid_binary_data", "A BYTES element is longer than the data that is left.")
            elements.append(raw[offset:offset + length])
            offset += length
    if len(elements) != count:
        raise ApiError(400, "invalid_data", f"The input's shape says {count} images; its data holds {len(elements)}.")
    return elements


def _requested_outputs(document, outputs=OUTPUTS):
    """[(output name, send as binary?)] in the order the client asked, or every output if it did not."""
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ApiError(400, "invalid_request", "'parameters' must be an object.")
    binary_default = parameters.get("binary_data_output") is True
    requested = document.get("outputs")
    if requested is None:
        return [(name, binary_default) for name in outputs]
    if not isinstance(requested, list) or not all(isinstance(o, dict) for o in requested):
        raise ApiError(400, "invalid_request", "'outputs' must be a list of objects with a 'name'.")
    wanted = []
    for output in requested:
        name = output.get("name")
        if name not in outputs:
            raise ApiError(400, "unknown_output", f"No output named {name!r}; the outputs are {', '.join(outputs)}.")
        options = output.get("parameters") or {}
        if not isinstance(options, dict):
            raise ApiError(400, "invalid_request", f"The parameters of output {name!r} must be an object.")
        if "classification" in options:
            raise ApiError(400, "unsupported_parameter",
                           "The classification extension is not supported; request 'digit'.")
        wanted.append((name, options.get("binary_data", binary_default) is True))
    return wanted


# -- mnist-number: whole numbers, read as POST /read reads them --------------------------------------

def _number_metadata(predictor):
    return {
        "name": NUMBER_MODEL,
        "versions": [predictor.version],
        "platform": "tflite" if predictor.backend == "litert" else "keras",
        "inputs": [{"name": "images", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]},
                    {"name": "confidence", "datatype": "FP32", "shape": [-1]},
                    {"name": "digits", "datatype": "INT64", "shape": [-1, -1]},
                    {"name": "digit_confidences", "datatype": "FP32", "shape": [-1, -1]},
                    {"name": "boxes", "datatype": "INT64", "shape": [-1, -1, 4]}],
    }


def _infer_number(predictor):
    config = current_app.config
    with metrics.stage("preprocess"):
        document, binary = _split_body(_decompressed(payload.whole_body(request)))
        inputs = document.get("inputs")
        if not (isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], dict)
                and inputs[0].get("datatype") == "BYTES"):
            raise ApiError(400, "invalid_request", f"{NUMBER_MODEL!r} takes one BYTES input: encoded images.")
        elements = _read_input(document, binary, config, decode=True)
        wanted = _requested_outputs(document, NUMBER_OUTPUTS)
    with metrics.stage("inference"):
        # Each image decoded, read and dropped before the next: never all of them decoded at once.
        readings = payload.each_item(elements, lambda data: current_app.extensions["read_number"](
            preprocess.decode_image(data, config["MAX_PIXELS"])))
    metrics.record_readings(reading.text for reading in readings)
    longest = max(len(reading.digits) for reading in readings)
    digits = np.full((len(readings), longest), -1, "<i8")
    confidences = np.zeros((len(readings), longest), "<f4")
    boxes = np.full((len(readings), longest, 4), -1, "<i8")
    for row, reading in enumerate(readings):
        for column, digit in enumerate(reading.digits):
            digits[row, column], confidences[row, column], boxes[row, column] = digit.digit, digit.confidence, digit.box
    tensors = {"text": ("BYTES", np.array([r.text.encode() for r in readings], dtype=object)),
               "confidence": ("FP32", np.array([r.confidence for r in readings], "<f4")),
               "digits": ("INT64", digits), "digit_confidences": ("FP32", confidences), "boxes": ("INT64", boxes)}
    return _response(document, predictor.version, tensors, wanted, NUMBER_MODEL)


def _bytes_data(array):
    """A BYTES tensor's binary form: each element as a 4-byte little-endian length, then its bytes."""
    return b"".join(struct.pack("<I", len(item)) + item for item in array.ravel())
