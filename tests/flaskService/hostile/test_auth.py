"""API keys on and off: who gets in where, and how a refusal looks."""
import pytest

from flaskService import create_app
from flaskService.config import from_environment
from tests.helpers import assert_error
from tests import corpus

KEYS = ("key-one", "key-two")
METRICS_KEYS = ("scrape-key",)
OPEN = ("/health/live", "/health/ready", "/model", "/", "/openapi.json", "/docs", "/v2/health/ready")


@pytest.fixture
def digit_png(clear_digits):
    return corpus.png_grey(clear_digits[7][0])[0]


def make_client(predictor, api_keys=(), metrics_keys=()):
    app = create_app({"TESTING": True, "PREDICTOR": predictor, "API_KEYS": api_keys,
                      "METRICS_API_KEYS": metrics_keys})
    return app.test_client()


@pytest.fixture
def locked(predictor):
    """Both kinds of key required."""
    return make_client(predictor, KEYS, METRICS_KEYS)


def predict(client, png, headers=None):
    return client.post("/predict", data=png, headers={"Content-Type": "image/png", **(headers or {})})


@pytest.mark.parametrize(("api_keys", "metrics_keys", "predict_status", "metrics_status"), (
    ((), (), 200, 200),
    (KEYS, (), 401, 200),
    ((), METRICS_KEYS, 200, 401),
    (KEYS, METRICS_KEYS, 401, 401),
))
def test_on_off_matrix_without_a_key(predictor, digit_png, api_keys, metrics_keys, predict_status, metrics_status):
    """Each setting guards its own routes and nothing else."""
    client = make_client(predictor, api_keys, metrics_keys)
    assert predict(client, digit_png).status_code == predict_status
    assert client.get("/metrics").status_code == metrics_status
    for path in OPEN:
        assert client.get(path).status_code != 401, path


@pytest.mark.parametrize("headers", (
    {"Authorization": "Bearer key-one"},
    {"Authorization": "Bearer key-two"},
    {"Authorization": "bearer key-two"},
    {"Authorization": "Bearer   key-one  "},
    {"X-API-Key": "key-one"},
    {"X-API-Key": "key-two"},
))
def test_a_valid_key_opens_predict(locked, digit_png, headers):
    response = predict(locked, digit_png, headers)
    assert response.status_code == 200 and response.json["digit"] == 7


@pytest.mark.parametrize(("headers", "key"), (
    ({}, "missing"),
    ({"Authorization": "Bearer "}, "missing"),
    ({"Authorization": "key-one"}, "missing"),
    ({"Authorization": "Basic a2V5LW9uZTo="}, "missing"),
    ({"X-API-Key": ""}, "missing"),
    ({"Authorization": "Bearer key-on"}, "invalid"),
    ({"Authorization": "Bearer key-one-and-more"}, "invalid"),
    ({"Authorization": "Bearer KEY-ONE"}, "invalid"),
    ({"Authorization": "Bearer key-one,key-two"}, "invalid"),
    ({"Authorization": "Bearer scrape-key"}, "invalid"),
    ({"X-API-Key": "key-\xe9"}, "invalid"),
    ({"X-API-Key": "wrong", "Authorization": "Basic a2V5LW9uZTo="}, "invalid"),
))
def test_no_valid_key_is_401_json_with_a_challenge(locked, digit_png, headers, key):
    """401 in the JSON error shape; the challenge says invalid_token only when a key was sent."""
    response = predict(locked, digit_png, headers)
    assert_error(response, 401, "unauthorized")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="digits"')
    assert ('error="invalid_token"' in challenge) == (key == "invalid")


@pytest.mark.parametrize("path", ("/v2/models/mnist/infer", "/v2/models/mnist/versions/1/infer",
                                  "/v2/models/anything/infer"))
def test_v2_infer_needs_a_key_too(locked, path):
    assert locked.post(path, json={"inputs": []}).status_code == 401
    assert locked.post(path, json={"inputs": []}, headers={"X-API-Key": "key-one"}).status_code != 401


def test_metrics_needs_a_metrics_key_not_an_api_key(locked):
    assert locked.get("/metrics", headers={"Authorization": "Bearer key-one"}).status_code == 401
    assert locked.get("/metrics", headers={"Authorization": "Bearer scrape-key"}).status_code == 200
    assert locked.get("/metrics", headers={"X-API-Key": "scrape-key"}).status_code == 200


def test_only_predicting_is_guarded(locked):
    """Health, the page, the docs, the model card and V2 metadata answer without a key; GET /predict
    is still the plain 405 (nothing is read there)."""
    for path in OPEN + ("/v2", "/v2/models/mnist"):
        assert locked.get(path).status_code != 401, path
    assert locked.get("/predict").status_code == 405


def test_keys_are_read_from_the_environment():
    config = from_environment({"API_KEYS": " key-one, key-two,, ", "METRICS_API_KEYS": "scrape-key"})
    assert config["API_KEYS"] == KEYS and config["METRICS_API_KEYS"] == METRICS_KEYS
    unset = from_environment({})
    assert unset["API_KEYS"] == () and unset["METRICS_API_KEYS"] == ()
