"""GET /openapi.json (OpenAPI 3.1, every route the app has) and GET /docs, an interactive page for it.

The page is Swagger UI, served from the pinned `flask-swagger-ui` package that ships its files, so
it works on servers without internet access: nothing is fetched from a CDN.
"""
from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, render_template, send_from_directory

bp = Blueprint("openapi", __name__)

SWAGGER_UI_DIR = Path(flask_swagger_ui.__file__).resolve().parent / "dist"


@bp.get("/openapi.json")
def document():
    return DOCUMENT


@bp.get("/docs")
def docs():
    return render_template("docs.html")


@bp.get("/docs/assets/<path:filename>")
def docs_asset(filename):
    return send_from_directory(SWAGGER_UI_DIR, filename, max_age=86400)


# -- the document ---------------------------------------------------------------------------------

def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema, example=None):
    content = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"application/json": content}


# A key is needed only when the server sets API_KEYS: no security ({}) is one of the options.
_KEY_IF_CONFIGURED = [{}, {"bearer": []}, {"apiKey": []}]


def _errors(*statuses):
    """The error responses an operation can give: all share the one error shape."""
    return {str(status): {"$ref": f"#/components/responses/Error{status}"} for status in statuses}


_ERROR_MEANINGS = {
    400: "The request is malformed (bad JSON, base64, shape, parameter...); `code` says which.",
    401: "An API key is required (API_KEYS is set) and none, or a wrong one, was sent.",
    403: "The key sent is not an admin key (ADMIN_API_KEYS), or the server sets none, which turns the route off.",
    404: "No such route, model or model version.",
    405: "The route exists but not for this method (see Allow).",
    413: "The body, an image, the batch or the pixels of all its images together are more than this server "
         "accepts (on /feedback also: one image larger than FEEDBACK_MAX_BYTES).",
    415: "The body's media type or image format is not supported.",
    422: "The image decoded but holds no digit (blank, or only specks: no_digits), holds several lines of writing "
         "(/read: several_lines) or is unusable (decompression bomb).",
    500: "A bug on our side; it has been logged.",
    503: "This worker is not ready (the model is loading or failed its self-check), the request ran past "
         "REQUEST_TIMEOUT (deadline_exceeded), or, on /feedback, the feedback database cannot be reached or written.",
    507: "The feedback store holds FEEDBACK_MAX_ROWS corrections, or this one would take it past "
         "FEEDBACK_MAX_BYTES; the operator must export or delete some.",
}

_PROBABILITIES = {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1},
                  "minItems": 10, "maxItems": 10,
                  "description": "One probability per digit 0-9, given that the image is one digit; they add up to 1."}

_MODEL_NAME = {"name": "model_name", "in": "path", "required": True, "example": "mnist",
               "schema": {"type": "string"},
               "description": "`mnist` (the loaded model's own name is accepted too), or `mnist-number` for whole numbers."}
_MODEL_VERSION = {"name": "model_version", "in": "path", "required": True, "schema": {"type": "string"},
                  "description": "The version `GET /v2/models/mnist` lists (the model file's sha256 prefix)."}

_PREDICT = {
    "post": {
        "tags": ["predict"],
        "summary": "Read the digit(s) in one or more images",
        "description": (
            "Send an image as a multipart file (`image`, or `file`), a base64 or data-URL text field, a raw "
            "image body (`Content-Type: image/png|jpeg|gif|bmp|webp`), or JSON with `image` (base64), "
            "`images` (a list) or `pixels` (a 28x28 array, 784 numbers, or a list of those; 0-255 or 0-1, "
            "white on black). A list in, a list out."),
        "parameters": [
            {"name": "preprocess", "in": "query", "schema": {"type": "string", "enum": ["auto", "none"], "default": "auto"},
             "description": "`none`: the input already is a 28x28 MNIST-style digit; use it as it is."},
            {"name": "debug", "in": "query", "schema": {"type": "string", "enum": ["1", "true"]},
             "description": "Also return, per image, the 28x28 input the model saw, as a PNG data URL."},
        ],
        "requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "image": {"type": "string", "format": "binary", "description": "The image file (several allowed)."},
                "file": {"type": "string", "format": "binary", "description": "Same as `image`."}}}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
                "image": {"type": "string", "description": "Base64 or a data:image/...;base64, URL."}}}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            **_json(_ref("PredictJson"), {"pixels": [[0] * 28] * 28}),
        }},
        "responses": {
            "200": {"description": "The digit read, with the model's probabilities, and whether the image holds one "
                                   "digit at all (is_digit; a flagged image is still a 200: the request was fine).",
                    "content": _json({"oneOf": [_ref("Prediction"), _ref("PredictionList")]})},
            **_errors(400, 401, 413, 415, 422, 500, 503),
        },
        "security": _KEY_IF_CONFIGURED,
    }
}

_READ = {
    "post": {
        "tags": ["read"],
        "summary": "Read the whole number (1 to 12 digits) written in one or more images",
        "description": (
            "The same request forms and limits as `/predict` (a 28x28 `pixels` array is read as a small "
            "image). The number model reads the whole line of writing in one pass (a convolutional "
            "network with CTC), digits apart, touching or overlapping: `text` left to right, `confidence` "
            "the probability that the whole text is right, and per digit its "
            "box `[x, y, w, h]` in the uploaded image's pixels. A mark standing apart that the model says is "
            "not a digit (a dash, a smudge) is left out, as is a speck standing apart above or below the line; "
            "an image with nothing else is 422 `no_digits`, and one with lines of writing one above the "
            "other is 422 `several_lines`. "
            "A list in, a list out."),
        "parameters": [
            {"name": "debug", "in": "query", "schema": {"type": "string", "enum": ["1", "true"]},
             "description": "Also return the image with the boxes drawn and, per digit, the 28x28 input the "
                            "model saw, as PNG data URLs."},
        ],
        "requestBody": _PREDICT["post"]["requestBody"],
        "responses": {
            "200": {"description": "The number read, digit by digit.",
                    "content": _json({"oneOf": [_ref("Reading"), _ref("ReadingList")]})},
            **_errors(400, 401, 413, 415, 422, 500, 503),
        },
        "security": _KEY_IF_CONFIGURED,
    }
}

_V2_INFER = {
    "post": {
        "security": _KEY_IF_CONFIGURED,
        "tags": ["v2"],
        "summary": "Open Inference Protocol (V2) inference",
        "description": (
            "One input tensor: FP32 (0-1) or UINT8 (0-255) shaped [N,28,28], [N,28,28,1] or [N,784], "
            "white on black, used as sent; or BYTES [N] of encoded images (base64 strings in JSON, raw in "
            "binary), which are preprocessed like /predict's. Outputs `probabilities` FP32 [N,10], `digit` "
            "INT64 [N] and `is_digit` BOOL [N]; `outputs` picks them. With the binary tensor data extension the body is the JSON "
            "header followed by the tensors' raw little-endian bytes, and Inference-Header-Content-Length "
            "gives the header's length (in the request and in a response carrying binary outputs). The request "
            "body may be compressed (Content-Encoding: gzip or deflate). The model `mnist-number` reads whole "
            "numbers as /read does: BYTES [N] of encoded images in; `text` BYTES [N], `confidence` FP32 [N] and, "
            "padded to the longest number L with -1 (0 for confidences), `digits` INT64 [N,L], "
            "`digit_confidences` FP32 [N,L] and `boxes` INT64 [N,L,4] out."),
        "parameters": [
            _MODEL_NAME,
            {"name": "Inference-Header-Content-Length", "in": "header", "schema": {"type": "integer", "minimum": 1},
             "description": "Binary tensor data extension: the length of the JSON header that starts the body."},
        ],
        "requestBody": {"required": True, "content": {
            **_json(_ref("V2InferenceRequest"), {
                "id": "42", "inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 784], "data": [0] * 784}],
                "outputs": [{"name": "digit"}]}),
            "application/octet-stream": {"schema": {
                "type": "string", "format": "binary", "description": "The JSON header, then the binary tensor data."}},
        }},
        "responses": {
            "200": {
                "description": "The outputs; binary ones follow the JSON header (see Inference-Header-Content-Length).",
                "headers": {"Inference-Header-Content-Length": {
                    "schema": {"type": "integer"}, "description": "Present when outputs are binary."}},
                "content": {**_json(_ref("V2InferenceResponse")),
                            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            },
            **_errors(400, 401, 404, 413, 415, 422, 500, 503),
        },
    }
}


_ADMIN_KEY = [{"bearer": []}, {"apiKey": []}]

_FEEDBACK = {
    "post": {
        "tags": ["feedback"],
        "summary": "Correct a prediction: store the image with the digit it really shows",
        "description": (
            "The image in any form /predict takes for one image (multipart `image` or `file`, a base64 or "
            "data-URL text field, JSON `image`, or a raw image body with the fields in the query string), "
            "with `label`, the right digit. Optional: `request_id` (the X-Request-ID of the prediction "
            "corrected), `predicted` (what the client was shown) and `source` (who sends it, e.g. `page`). "
            "The server stores the image's pixels without its metadata (EXIF, XMP, ICC, text chunks, "
            "comments: an upright JPEG keeps its compressed data, anything else becomes a PNG), the 28x28 "
            "input the model saw, the label, the model's own answer, confidence and version, the time, and "
            "the request_id, predicted and source the client sent."),
        "parameters": [
            {"name": name, "in": "query", "schema": schema, "description": f"With a raw image body: {what}"}
            for name, schema, what in (
                ("label", {"type": "integer", "minimum": 0, "maximum": 9}, "the right digit."),
                ("predicted", {"type": "integer", "minimum": 0, "maximum": 9}, "what the client was shown."),
                ("request_id", {"type": "string"}, "the prediction's X-Request-ID."),
                ("source", {"type": "string"}, "who sends the correction."))],
        "requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": _ref("FeedbackForm")},
            "application/x-www-form-urlencoded": {"schema": _ref("FeedbackForm")},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            **_json(_ref("FeedbackJson")),
        }},
        "responses": {
            "201": {"description": "Stored.", "content": _json(_ref("FeedbackStored"))},
            **_errors(400, 401, 404, 413, 415, 422, 500, 503, 507),
        },
        "security": _KEY_IF_CONFIGURED,
    }
}

_FEEDBACK_EXPORT = {
    "get": {
        "tags": ["feedback"],
        "summary": "Every stored correction, as a zip of 0/ ... 9/ image folders (admin)",
        "description": (
            "The stored images (no metadata), each in the folder of its label (`<label>/<id>.<png|jpg>`), "
            "the layout `train.py --data DIR` reads, and `feedback.csv` with each one's id, time, label, model answer, "
            "model version, request id and source. Needs one of ADMIN_API_KEYS; off (403) when none is set."),
        "responses": {
            "200": {"description": "A zip file.", "content": {"application/zip": {
                "schema": {"type": "string", "format": "binary"}}}},
            **_errors(401, 403, 404, 500, 503),
        },
        "security": _ADMIN_KEY,
    }
}

_FEEDBACK_DELETE = {
    "delete": {
        "tags": ["feedback"],
        "summary": "Delete one stored correction (admin)",
        "parameters": [{"name": "correction_id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 2147483647},
                        "description": "The `id` POST /feedback answered (also in the export's feedback.csv)."}],
        "responses": {
            "204": {"description": "Deleted."},
            **_errors(401, 403, 404, 500, 503),
        },
        "security": _ADMIN_KEY,
    }
}


def _get(tag, summary, schema, *statuses, parameters=()):
    operation = {"tags": [tag], "summary": summary,
                 "responses": {"200": {"description": "OK", "content": _json(schema)}, **_errors(*statuses)}}
    if parameters:
        operation["parameters"] = list(parameters)
    return {"get": operation}


_TENSOR_METADATA = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
    "name": {"type": "string"}, "datatype": {"type": "string"},
    "shape": {"type": "array", "items": {"type": "integer"}, "description": "-1 for a variable size."}}}

_PARAMETERS = {"type": "object", "additionalProperties": True}

SCHEMAS = {
    "Error": {
        "type": "object", "required": ["error", "code", "status"],
        "description": "Every error, on every route (the V2 routes' `{\"error\": ...}` plus code and status).",
        "properties": {"error": {"type": "string", "description": "What went wrong, for a person."},
                       "code": {"type": "string", "description": "What went wrong, for a program.",
                                "examples": ["invalid_json", "invalid_base64", "invalid_image", "empty_image",
                                             "invalid_pixels", "no_image", "malformed_body", "unauthorized",
                                             "payload_too_large", "too_many_images", "too_many_pixels",
                                             "request_too_many_pixels", "deadline_exceeded",
                                             "unsupported_media_type", "unsupported_image_format",
                                             "blank_image", "no_digits", "several_lines",
                                             "implausible_image", "decompression_bomb",
                                             "not_ready", "invalid_label", "feedback_full", "feedback_too_large",
                                             "feedback_unavailable", "feedback_disabled", "feedback_not_found",
                                             "admin_disabled", "forbidden"]},
                       "status": {"type": "integer", "description": "The HTTP status, repeated."}}},
    "Model": {"type": "object", "required": ["name", "version"], "properties": {
        "name": {"type": "string"}, "version": {"type": "string"}}},
    "Prediction": {
        "type": "object", "required": ["digit", "confidence", "probabilities", "is_digit", "digit_score"],
        "properties": {
            "digit": {"type": "integer", "minimum": 0, "maximum": 9,
                      "description": "The likeliest digit: the best guess, even when is_digit is false."},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                           "description": "Calibrated probability that the image is this digit."},
            "probabilities": _PROBABILITIES,
            "is_digit": {"type": "boolean",
                         "description": "Whether the image holds one digit (digit_score >= MIN_DIGIT_SCORE)."},
            "digit_score": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                            "description": "Probability that the image is one digit; null for a model that "
                                           "cannot tell (a legacy 10-output model)."},
            "reason": {"type": "string", "enum": ["not_a_digit", "several_digits"],
                       "description": "Only when is_digit is false: why. several_digits: read it as a number."},
            "input": {"type": "string", "description": "With ?debug=1: the 28x28 input as a PNG data URL."},
            "model": _ref("Model")}},
    "PredictionList": {
        "type": "object", "required": ["predictions", "model"], "properties": {
            "predictions": {"type": "array", "items": _ref("Prediction")}, "model": _ref("Model")}},
    "ReadDigit": {
        "description": "One digit of the number, read by the number model from the columns of the line "
                       "between its neighbours.",
        "type": "object", "required": ["digit", "confidence", "probabilities", "is_digit", "digit_score", "box"],
        "properties": {
            "digit": {"type": "integer", "minimum": 0, "maximum": 9},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                           "description": "Calibrated probability that the digit is this one."},
            "probabilities": _PROBABILITIES,
            "is_digit": {"type": "boolean",
                         "description": "Whether digit_score >= MIN_DIGIT_SCORE."},
            "digit_score": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                            "description": "1 minus the probability of no digit (the CTC blank) at the digit's frames."},
            "reason": {"type": "string", "enum": ["not_a_digit", "several_digits"],
                       "description": "Only when is_digit is false: why."},
            "box": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
                    "description": "[x, y, width, height] of the digit's ink, in the uploaded image's pixels."},
            "input": {"type": "string", "description": "With ?debug=1: the columns of the line the model read "
                                                      "the digit from, as a PNG data URL."}}},
    "Reading": {
        "type": "object", "required": ["text", "confidence", "digits"], "properties": {
            "text": {"type": "string", "pattern": "^[0-9]+$", "examples": ["2026"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                           "description": "The probability that the whole text is right: the model's probability of "
                                          "the text, summed over every way its frames can spell it (CTC), calibrated."},
            "digits": {"type": "array", "items": _ref("ReadDigit"), "minItems": 1, "description": "Left to right."},
            "image": {"type": "string",
                      "description": "With ?debug=1: the image (at most 640 px on its longest side) with the boxes "
                                     "drawn, as a PNG data URL."},
            "model": _ref("Model")}},
    "ReadingList": {
        "type": "object", "required": ["readings", "model"], "properties": {
            "readings": {"type": "array", "items": _ref("Reading")}, "model": _ref("Model")}},
    "PredictJson": {
        "description": "Exactly one of image, images or pixels.",
        "oneOf": [
            {"type": "object", "required": ["image"], "properties": {"image": {
                "type": "string", "description": "Base64 or a data:image/...;base64, URL."}}},
            {"type": "object", "required": ["images"], "properties": {"images": {
                "type": "array", "items": {"type": "string"}, "description": "Base64 strings or data URLs."}}},
            {"type": "object", "required": ["pixels"], "properties": {"pixels": {
                "type": "array", "description": "28x28 (or 784) numbers, 0-255 or 0-1, white on black; or a list of them."}}},
        ]},
    "FeedbackForm": {"type": "object", "required": ["label"], "properties": {
        "image": {"type": "string", "format": "binary", "description": "The image (a file, or base64 / a data URL as text)."},
        "file": {"type": "string", "format": "binary", "description": "Same as `image`."},
        "label": {"type": "integer", "minimum": 0, "maximum": 9, "description": "The digit the image really shows."},
        "predicted": {"type": "integer", "minimum": 0, "maximum": 9, "description": "What the client was shown."},
        "request_id": {"type": "string", "description": "The X-Request-ID of the prediction corrected."},
        "source": {"type": "string", "description": "Who sends it (e.g. `page`)."}}},
    "FeedbackJson": {"type": "object", "required": ["image", "label"], "properties": {
        "image": {"type": "string", "description": "Base64 or a data:image/...;base64, URL."},
        "label": {"type": "integer", "minimum": 0, "maximum": 9, "description": "The digit the image really shows."},
        "predicted": {"type": "integer", "minimum": 0, "maximum": 9, "description": "What the client was shown."},
        "request_id": {"type": "string", "description": "The X-Request-ID of the prediction corrected."},
        "source": {"type": "string", "description": "Who sends it (e.g. `page`)."}}},
    "FeedbackStored": {"type": "object", "required": ["id", "label", "predicted", "confidence", "model"], "properties": {
        "id": {"type": "integer", "description": "The stored correction's id (DELETE /feedback/{id} removes it)."},
        "label": {"type": "integer", "minimum": 0, "maximum": 9},
        "predicted": {"type": "integer", "minimum": 0, "maximum": 9, "description": "What the model reads in the image."},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "model": _ref("Model")}},
    "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "ModelCard": {
        "type": "object", "required": ["name", "version", "backend"], "additionalProperties": True,
        "description": "The model and, when training wrote one, its card (accuracy, data, ...).",
        "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                       "sha256": {"type": ["string", "null"]}, "backend": {"type": "string", "enum": ["litert", "keras"]},
                       "detects_non_digits": {"type": "boolean",
                                              "description": "false for a digits-only model: is_digit is then always true."},
                       "min_digit_score": {"type": "number", "description": "The operating point of is_digit."}}},
    "V2ServerMetadata": {"type": "object", "required": ["name", "version", "extensions"], "properties": {
        "name": {"type": "string"}, "version": {"type": "string"},
        "extensions": {"type": "array", "items": {"type": "string"}}}},
    "V2Live": {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}},
    "V2Ready": {"type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"}}},
    "V2ModelReady": {"type": "object", "required": ["name", "ready"], "properties": {
        "name": {"type": "string"}, "ready": {"type": "boolean"}}},
    "V2ModelMetadata": {"type": "object", "required": ["name", "platform", "inputs", "outputs"], "properties": {
        "name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
        "platform": {"type": "string"},
        "inputs": {"type": "array", "items": _TENSOR_METADATA},
        "outputs": {"type": "array", "items": _TENSOR_METADATA}}},
    "V2RequestInput": {
        "type": "object", "required": ["name", "shape", "datatype"], "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": ["FP32", "UINT8", "BYTES"]},
            "parameters": {"type": "object", "additionalProperties": True, "properties": {
                "binary_data_size": {"type": "integer", "description": "Its data is this many bytes of the binary section."}}},
            "data": {"type": "array", "description": "Row-major, flat or nested; BYTES: base64 strings or data URLs."}}},
    "V2RequestOutput": {
        "type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "enum": ["probabilities", "digit", "is_digit", "text", "confidence", "digits",
                                                 "digit_confidences", "boxes"]},
            "parameters": {"type": "object", "additionalProperties": True, "properties": {
                "binary_data": {"type": "boolean", "description": "Send this output as binary data."}}}}},
    "V2InferenceRequest": {
        "type": "object", "required": ["inputs"], "properties": {
            "id": {"type": "string", "description": "Echoed in the response."},
            "parameters": {"type": "object", "additionalProperties": True, "properties": {
                "binary_data_output": {"type": "boolean", "description": "Send every output as binary data by default."}}},
            "inputs": {"type": "array", "items": _ref("V2RequestInput"), "minItems": 1, "maxItems": 1},
            "outputs": {"type": "array", "items": _ref("V2RequestOutput")}}},
    "V2ResponseOutput": {
        "type": "object", "required": ["name", "shape", "datatype"], "properties": {
            "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string", "enum": ["FP32", "INT64", "BYTES"]},
            "parameters": _PARAMETERS, "data": {"type": "array", "items": {"type": ["number", "string"]}}}},
    "V2InferenceResponse": {
        "type": "object", "required": ["model_name", "outputs"], "properties": {
            "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
            "outputs": {"type": "array", "items": _ref("V2ResponseOutput")}}},
}

_TEXT = {"text/plain": {"schema": {"type": "string"}}}

PATHS = {
    "/": {"get": {
        "tags": ["page"], "summary": "The drawing page: draw a digit, see what the model reads",
        "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    "/predict": _PREDICT,
    "/feedback": _FEEDBACK,
    "/feedback/export": _FEEDBACK_EXPORT,
    "/feedback/{correction_id}": _FEEDBACK_DELETE,
    "/read": _READ,
    "/health/live": _get("health", "Liveness: the process answers", _ref("Status"), 500),
    "/health/ready": _get("health", "Readiness: the model is loaded and passed its self-check",
                                 _ref("Status"), 500, 503),
    "/model": _get("health", "The model being served and its card", _ref("ModelCard"), 500),
    "/v2": _get("v2", "Server metadata", _ref("V2ServerMetadata"), 500),
    "/v2/health/live": _get("v2", "Server live", _ref("V2Live"), 500),
    "/v2/health/ready": _get("v2", "Server ready", _ref("V2Ready"), 500, 503),
    "/v2/models/{model_name}": _get("v2", "Model metadata", _ref("V2ModelMetadata"), 404, 500,
                                    parameters=[_MODEL_NAME]),
    "/v2/models/{model_name}/versions/{model_version}": _get(
        "v2", "Model metadata, one version", _ref("V2ModelMetadata"), 404, 500, parameters=[_MODEL_NAME, _MODEL_VERSION]),
    "/v2/models/{model_name}/ready": _get("v2", "Model ready", _ref("V2ModelReady"), 404, 500, 503,
                                          parameters=[_MODEL_NAME]),
    "/v2/models/{model_name}/versions/{model_version}/ready": _get(
        "v2", "Model ready, one version", _ref("V2ModelReady"), 404, 500, 503, parameters=[_MODEL_NAME, _MODEL_VERSION]),
    "/v2/models/{model_name}/infer": _V2_INFER,
    "/v2/models/{model_name}/versions/{model_version}/infer": {"post": {
        **_V2_INFER["post"], "summary": "Open Inference Protocol (V2) inference, one version",
        "parameters": [*_V2_INFER["post"]["parameters"], _MODEL_VERSION]}},
    "/metrics": {"get": {
        "tags": ["operations"], "summary": "Prometheus metrics, summed over all workers",
        "responses": {"200": {"description": "Prometheus text exposition format.", "content": _TEXT},
                      **_errors(500)}}},
    "/openapi.json": {"get": {
        "tags": ["operations"], "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.1", "content": _json({"type": "object"})}}}},
    "/docs": {"get": {
        "tags": ["operations"], "summary": "An interactive page for this document (Swagger UI, served locally)",
        "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    "/docs/assets/{filename}": {"get": {
        "tags": ["operations"], "summary": "Swagger UI's own files, for /docs",
        "parameters": [{"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "A file", "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                      **_errors(404)}}},
    "/static/{filename}": {"get": {
        "tags": ["operations"], "summary": "The package's static files (the pages' scripts and styles)",
        "parameters": [{"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "A file", "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                      **_errors(404)}}},
}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "Handwritten digit recognition",
        "version": "1",
        "description": (
            "Reads handwritten digits with an MNIST model. `/predict` takes images as people have them; "
            "`/read` reads whole numbers; "
            "`/v2/...` speaks the Open Inference Protocol (KServe, Triton, MLServer clients work as they are). "
            "Every error has the same JSON shape (`Error`), and every response carries X-Request-ID."),
    },
    "tags": [{"name": "page"}, {"name": "predict"}, {"name": "read"},
             {"name": "feedback", "description": "Corrections, for retraining"},
             {"name": "v2", "description": "Open Inference Protocol (V2)"},
             {"name": "health"}, {"name": "operations"}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "responses": {f"Error{status}": {"description": meaning, "content": _json(_ref("Error"))}
                      for status, meaning in _ERROR_MEANINGS.items()},
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "One of API_KEYS, when it is set."},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The same, as a header."},
        },
    },
}
