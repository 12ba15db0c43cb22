"""The Open Inference Protocol (V2) routes, driven by Triton's own client against a real gunicorn,
and their error cases through the test client."""
import base64
import gzip
import json
import struct

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.helpers import SHARED_DATA, assert_error, image_bytes

# The accuracy the shipped model must reach on real MNIST test digits sent as tensors.
ACCURACY = 0.99
SAMPLE = 1024  # digits per accuracy check: 4 full batches of 256


@pytest.fixture(scope="module")
def triton_client(server):
    client = triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=30)
    yield client
    client.close()


@pytest.fixture(scope="module")
def sample(mnist):
    """SAMPLE test digits spread over the whole test set (its halves differ in difficulty)."""
    index = np.random.default_rng(5).choice(len(mnist["x_test"]), SAMPLE, replace=False)
    return mnist["x_test"][index], mnist["y_test"][index]


def tensor(array, datatype, binary=True, name="images"):
    infer_input = triton.InferInput(name, list(array.shape), datatype)
    infer_input.set_data_from_numpy(array, binary_data=binary)
    return infer_input


def test_health_and_readiness(triton_client):
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready("mnist")
    assert not triton_client.is_model_ready("resnet50")


def test_server_metadata(triton_client):
    metadata = triton_client.get_server_metadata()
    assert metadata["name"] and metadata["version"]
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_metadata_and_versions(triton_client):
    metadata = triton_client.get_model_metadata("mnist")
    assert metadata["name"] == "mnist"
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                                   {"name": "digit", "datatype": "INT64", "shape": [-1]},
                                   {"name": "is_digit", "datatype": "BOOL", "shape": [-1]}]
    assert metadata["inputs"][0]["shape"][1:] == [28, 28, 1]
    (version,) = metadata["versions"]
    assert triton_client.get_model_metadata("mnist", version) == metadata
    assert triton_client.is_model_ready("mnist", version)
    assert not triton_client.is_model_ready("mnist", "not-" + version)


@pytest.mark.parametrize(("datatype", "shape", "binary"), (
    ("FP32", (28, 28), True),
    ("FP32", (784,), False),
    ("UINT8", (28, 28, 1), True),
    ("UINT8", (28, 28), False),
))
def test_infer_reads_mnist_test_digits(triton_client, sample, datatype, shape, binary):
    """1024 real test digits in batches of 256, as tensors: >= 99% read right, outputs consistent."""
    images, labels = sample
    read = []
    for start in range(0, SAMPLE, 256):
        batch = images[start:start + 256]
        array = (batch / 255.0).astype(np.float32) if datatype == "FP32" else batch
        result = triton_client.infer("mnist", [tensor(array.reshape(len(batch), *shape), datatype, binary)])
        probabilities, digits = result.as_numpy("probabilities"), result.as_numpy("digit")
        is_digit = result.as_numpy("is_digit")
        assert probabilities.shape == (len(batch), 10) and probabilities.dtype == np.float32
        assert digits.dtype == np.int64 and is_digit.dtype == np.bool_ and is_digit.shape == (len(batch),)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
        assert is_digit.mean() >= 0.98
        assert (digits == probabilities.argmax(axis=1)).all()
        read.append(digits)
    accuracy = (np.concatenate(read) == labels).mean()
    assert accuracy >= ACCURACY, f"{datatype} {shape}: {accuracy:.2%} of {SAMPLE} test digits"


def test_fp32_and_uint8_agree(triton_client, sample):
    """The same digits as 0-255 integers and as 0-1 floats give the same probabilities."""
    images = sample[0][:16]
    as_uint8 = triton_client.infer("mnist", [tensor(images, "UINT8")]).as_numpy("probabilities")
    as_fp32 = triton_client.infer("mnist", [tensor((images / 255.0).astype(np.float32), "FP32")]).as_numpy("probabilities")
    np.testing.assert_allclose(as_uint8, as_fp32, atol=1e-5)


@pytest.mark.parametrize("binary", (True, False))
def test_requested_outputs_only(triton_client, sample, binary):
    images, labels = sample[0][:8], sample[1][:8]
    result = triton_client.infer("mnist", [tensor(images, "UINT8")],
                                 outputs=[triton.InferRequestedOutput("digit", binary_data=binary)])
    (output,) = result.get_response()["outputs"]
    assert output["name"] == "digit" and output["shape"] == [8]
    assert ("data" in output) is not binary
    assert result.as_numpy("probabilities") is None
    assert (result.as_numpy("digit") == labels).sum() >= 7


def test_outputs_in_json_when_asked(server, sample):
    """Plain JSON in, plain JSON out: no binary section unless a client asks for one."""
    images, labels = sample[0][:4], sample[1][:4]
    body = {"inputs": [{"name": "images", "shape": [4, 28, 28], "datatype": "UINT8", "data": images.tolist()}]}
    response = requests.post(server.url + "/v2/models/mnist/infer", json=body, timeout=10)
    assert response.status_code == 200 and "Inference-Header-Content-Length" not in response.headers
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["digit"]["data"] == labels.tolist()
    assert len(outputs["probabilities"]["data"]) == 40


def test_id_is_echoed(triton_client, sample):
    result = triton_client.infer("mnist", [tensor(sample[0][:1], "UINT8")], request_id="req-42")
    assert result.get_response()["id"] == "req-42"
    assert "id" not in triton_client.infer("mnist", [tensor(sample[0][:1], "UINT8")]).get_response()


@pytest.mark.parametrize("binary", (True, False))
def test_bytes_of_encoded_images(triton_client, sample, binary):
    """PNG-encoded test digits and a real drawing from the original page (a 6), as a BYTES tensor:
    raw in the binary form, base64 in the JSON form; they are preprocessed like /predict's."""
    images, labels = sample[0][:8], sample[1][:8]
    encoded = [image_bytes(image) for image in images] + [(SHARED_DATA / "seed_canvas.jpeg").read_bytes()]
    if not binary:
        encoded = [base64.b64encode(data) for data in encoded]
    result = triton_client.infer("mnist", [tensor(np.array(encoded, dtype=object), "BYTES", binary)])
    digits = result.as_numpy("digit")
    assert digits[-1] == 6
    assert (digits[:-1] == labels).sum() >= 7


@pytest.mark.parametrize("compression", ("gzip", "deflate"))
def test_compressed_requests(triton_client, sample, compression):
    images, labels = sample[0][:16], sample[1][:16]
    result = triton_client.infer("mnist", [tensor(images, "UINT8")], request_compression_algorithm=compression)
    assert (result.as_numpy("digit") == labels).sum() >= 15


def test_errors_reach_tritonclient_as_4xx(triton_client):
    with pytest.raises(InferenceServerException) as error:
        triton_client.infer("mnist", [tensor(np.zeros((2, 3), np.float32), "FP32")])
    assert error.value.status() == "400" and "[N,28,28]" in error.value.message()
    with pytest.raises(InferenceServerException) as error:
        triton_client.infer("fashion", [tensor(np.zeros((1, 784), np.uint8), "UINT8")])
    assert error.value.status() == "404"


# -- error cases, through the test client ---------------------------------------------------------

def request_body(datatype="UINT8", shape=(1, 784), data=None, **extra):
    tensor_json = {"name": "images", "shape": list(shape), "datatype": datatype}
    tensor_json["data"] = [0] * int(np.prod(shape)) if data is None else data
    return {"inputs": [tensor_json], **extra}


BLANK_PNG_BASE64 = base64.b64encode(image_bytes(np.zeros((28, 28), np.uint8))).decode()


@pytest.mark.parametrize(("body", "status", "code"), (
    (b"{not json", 400, "invalid_json"),
    (b"[]", 400, "invalid_request"),
    ({"inputs": []}, 400, "invalid_request"),
    ({"inputs": [request_body()["inputs"][0]] * 2}, 400, "invalid_request"),
    (request_body(shape=(1, 28)), 400, "invalid_shape"),
    (request_body(shape=(1, -28, 28)), 400, "invalid_shape"),
    (request_body(shape=(0, 784), data=[]), 400, "no_image"),
    (request_body(shape=(257, 784)), 413, "too_many_images"),
    (request_body(datatype="INT32"), 400, "unsupported_datatype"),
    (request_body(data=[0] * 783), 400, "invalid_data"),
    (request_body(data=["x"] * 784), 400, "invalid_data"),
    (request_body(data=[300] * 784), 400, "invalid_pixels"),
    (request_body(data=[0.5] * 784), 400, "invalid_pixels"),
    (request_body(datatype="FP32", data=[2.0] * 784), 400, "invalid_pixels"),
    (request_body(datatype="FP32", data=[-0.1] * 784), 400, "invalid_pixels"),
    (request_body(id=42), 400, "invalid_request"),
    (request_body(outputs=[{"name": "logits"}]), 400, "unknown_output"),
    (request_body(outputs=[{"name": "digit", "parameters": {"classification": 3}}]), 400, "unsupported_parameter"),
    (request_body(datatype="BYTES", shape=(1,), data=["not base64!"]), 400, "invalid_base64"),
    (request_body(datatype="BYTES", shape=(1,), data=[base64.b64encode(b"hello").decode()]), 400, "invalid_image"),
    (request_body(datatype="BYTES", shape=(1, 28), data=["x"]), 400, "invalid_shape"),
    (request_body(datatype="BYTES", shape=(2,), data=[BLANK_PNG_BASE64] * 2),
     422, "blank_image"),
))
def test_bad_inference_requests(client, body, status, code):
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = client.post("/v2/models/mnist/infer", data=data, content_type="application/json")
    assert_error(response, status, code)


def test_a_bad_image_in_a_bytes_batch_is_named(client, mnist):
    """As in /predict, the error says which image of the batch is at fault."""
    good = base64.b64encode(image_bytes(mnist["x_test"][0])).decode()
    body = request_body(datatype="BYTES", shape=(3,), data=[good, good, BLANK_PNG_BASE64])
    response = client.post("/v2/models/mnist/infer", data=json.dumps(body), content_type="application/json")
    assert_error(response, 422, "blank_image")
    assert response.json["error"].startswith("image 2: ")


def binary_request(header, binary, length=None):
    head = json.dumps(header).encode()
    return head + binary, {"Inference-Header-Content-Length": str(len(head) if length is None else length)}


@pytest.mark.parametrize(("header", "binary", "length", "code"), (
    ({"inputs": [{"name": "i", "shape": [1, 784], "datatype": "UINT8", "parameters": {"binary_data_size": 784}}]},
     b"\x00" * 700, None, "invalid_binary_data"),
    ({"inputs": [{"name": "i", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": 784}}]},
     b"\x00" * 784, None, "invalid_binary_data"),
    ({"inputs": [{"name": "i", "shape": [1, 784], "datatype": "UINT8", "data": [0] * 784}]},
     b"\x00" * 4, None, "invalid_binary_data"),
    ({"inputs": [{"name": "i", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]},
     struct.pack("<I", 100) + b"ab", None, "invalid_binary_data"),
    ({"inputs": [{"name": "i", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 2}}]},
     b"ab", None, "invalid_binary_data"),
    ({"inputs": []}, b"", "12x", "invalid_header_length"),
    ({"inputs": []}, b"", 10_000, "invalid_header_length"),
    ({"inputs": []}, b"", "\u00b2", "invalid_header_length"),  # a digit to str.isdigit, not to int()
))
def test_bad_binary_requests(client, header, binary, length, code):
    body, headers = binary_request(header, binary, length)
    response = client.post("/v2/models/mnist/infer", data=body, headers=headers)
    assert_error(response, 400, code)


@pytest.mark.parametrize(("encoding", "body", "status", "code"), (
    ("br", b"{}", 415, "unsupported_content_encoding"),
    ("gzip", b"not gzip", 400, "invalid_content_encoding"),
    ("gzip", gzip.compress(b" " * (5 * 1024 * 1024)), 413, "payload_too_large"),  # 5 MiB of spaces in 5 KiB
))
def test_bad_compressed_requests(client, encoding, body, status, code):
    response = client.post("/v2/models/mnist/infer", data=body, headers={"Content-Encoding": encoding})
    assert_error(response, status, code)


def test_binary_request_and_response(client, mnist):
    """The binary tensor data extension by hand: raw UINT8 in, raw FP32 and INT64 out."""
    images = mnist["x_test"][:3]
    header = {"inputs": [{"name": "images", "shape": [3, 28, 28], "datatype": "UINT8",
                          "parameters": {"binary_data_size": images.nbytes}}],
              "parameters": {"binary_data_output": True}}
    body, headers = binary_request(header, images.tobytes())
    response = client.post("/v2/models/mnist/infer", data=body, headers=headers)
    assert response.status_code == 200 and response.mimetype == "application/octet-stream"
    length = int(response.headers["Inference-Header-Content-Length"])
    outputs = json.loads(response.data[:length])["outputs"]
    assert [(o["name"], o["parameters"]["binary_data_size"]) for o in outputs] == [
        ("probabilities", 120), ("digit", 24), ("is_digit", 3)]
    digits = np.frombuffer(response.data[length + 120:length + 144], "<i8")
    assert digits.tolist() == mnist["y_test"][:3].tolist()
    assert response.data[length + 144:] == b"\x01\x01\x01"  # BOOL: one byte each


@pytest.mark.parametrize(("path", "status", "code"), (
    ("/v2/models/fashion", 404, "model_not_found"),
    ("/v2/models/mnist/versions/0", 404, "model_version_not_found"),
    ("/v2/models/fashion/ready", 404, "model_not_found"),
))
def test_unknown_models_are_404(client, path, status, code):
    response = client.get(path)
    assert_error(response, status, code)


def test_the_loaded_models_own_name_is_an_alias(client, predictor):
    assert client.get(f"/v2/models/{predictor.name}/ready").json == {"name": "mnist", "ready": True}


def test_batch_limit_follows_max_images(predictor, mnist):
    from flaskService import create_app

    client = create_app({"TESTING": True, "PREDICTOR": predictor, "MAX_IMAGES": 4}).test_client()
    for count, status in ((4, 200), (5, 413)):
        body = request_body(shape=(count, 784), data=mnist["x_test"][:count].ravel().tolist())
        assert client.post("/v2/models/mnist/infer", json=body).status_code == status


def test_not_ready_worker_says_so(app, client):
    app.extensions["readiness"].set("the model is loading")
    assert client.get("/v2/health/live").status_code == 200
    for path in ("/v2/health/ready", "/v2/models/mnist/ready"):
        response = client.get(path)
        assert_error(response, 503)
        assert response.json["error"] == "the model is loading"


# -- mnist-number: whole numbers over V2 ----------------------------------------------------------

@pytest.fixture(scope="module")
def numbers(mnist):
    from modelTrain.evalsets.numbers import number

    return [number(mnist, index, "separate", "paper_png", (length, length)) for index, length in enumerate((3, 1, 5))]


def test_number_model_metadata(triton_client):
    metadata = triton_client.get_model_metadata("mnist-number")
    assert metadata["name"] == "mnist-number"
    assert metadata["inputs"] == [{"name": "images", "datatype": "BYTES", "shape": [-1]}]
    assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [
        ("text", "BYTES"), ("confidence", "FP32"), ("digits", "INT64"), ("digit_confidences", "FP32"), ("boxes", "INT64")]
    assert triton_client.is_model_ready("mnist-number", metadata["versions"][0])


@pytest.mark.parametrize("binary", (True, False))
def test_number_model_reads_numbers(triton_client, client, numbers, binary):
    """Three numbers of 3, 1 and 5 digits in one BYTES tensor: their texts and confidences as /read
    gives them, and per digit the digit, its confidence and its box, padded with -1 (and 0) to the
    longest number."""
    encoded = [n.data if binary else base64.b64encode(n.data) for n in numbers]
    outputs = [triton.InferRequestedOutput(name, binary_data=binary)
               for name in ("text", "confidence", "digits", "digit_confidences", "boxes")]
    result = triton_client.infer("mnist-number", [tensor(np.array(encoded, dtype=object), "BYTES", binary)],
                                 outputs=outputs)
    texts = [t.decode() if isinstance(t, bytes) else t for t in result.as_numpy("text")]  # JSON gives str
    assert texts == [n.text for n in numbers]
    digits, boxes = result.as_numpy("digits"), result.as_numpy("boxes")
    confidences = result.as_numpy("digit_confidences")
    assert digits.shape == (3, 5) and boxes.shape == (3, 5, 4) and confidences.shape == (3, 5)
    for row, sample in enumerate(numbers):
        length = len(sample.text)
        assert "".join(map(str, digits[row, :length])) == sample.text and (digits[row, length:] == -1).all()
        assert (boxes[row, length:] == -1).all() and (confidences[row, length:] == 0).all()
        assert (boxes[row, :length, 2:] > 0).all() and (np.diff(boxes[row, :length, 0]) > 0).all()
        read = client.post("/read", data=sample.data, content_type="image/png").json
        assert result.as_numpy("confidence")[row] == pytest.approx(read["confidence"], rel=1e-5)
        assert confidences[row, :length] == pytest.approx([d["confidence"] for d in read["digits"]], rel=1e-5)


def test_number_model_only_takes_encoded_images(triton_client, client):
    with pytest.raises(InferenceServerException) as error:
        triton_client.infer("mnist-number", [tensor(np.zeros((1, 28, 28), np.float32), "FP32")])
    assert "400" in str(error.value.status()) and "BYTES" in error.value.message()
    blank = base64.b64encode(image_bytes(np.full((40, 90), 255, np.uint8))).decode()
    response = client.post("/v2/models/mnist-number/infer",
                           json={"inputs": [{"name": "images", "shape": [1], "datatype": "BYTES", "data": [blank]}]})
    assert_error(response, 422, "blank_image")
    response = client.post("/v2/models/mnist-number/infer", json={
        "inputs": [{"name": "images", "shape": [1], "datatype": "BYTES", "data": [blank]}],
        "outputs": [{"name": "digit"}]})
    assert_error(response, 400, "unknown_output")
