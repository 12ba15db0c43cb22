"""Accuracy through the whole /predict pipeline on MNIST test digits re-rendered the way people
send them (modelTrain/evalsets/renders.py), where naive resizing fails."""
import numpy as np
import pytest

from modelTrain.evalsets.renders import STYLES, render

PER_STYLE = 150  # 6 styles x 150 = 900 requests: enough to see 98.5% from 97%


@pytest.fixture(scope="module")
def rendered(mnist):
    """The same first 900 test digits, each in one style, as (bytes, label) pairs."""
    rng = np.random.default_rng(2026)
    count = PER_STYLE * len(STYLES)
    return [(render(mnist["x_test"][i], STYLES[i % len(STYLES)], rng), int(mnist["y_test"][i]))
            for i in range(count)]


def test_rerendered_digits_are_read_right(client, rendered):
    """At least 98.5% of re-rendered test digits are read right, and no style falls below 96%."""
    right = {style: 0 for style in STYLES}
    for index, (data, label) in enumerate(rendered):
        response = client.post("/predict", data=data, content_type="image/png")
        assert response.status_code == 200, response.json
        right[STYLES[index % len(STYLES)]] += response.json["digit"] == label
    accuracy = sum(right.values()) / len(rendered)
    per_style = {style: count / PER_STYLE for style, count in right.items()}
    print(f"accuracy {accuracy:.4f} per style {per_style}")
    assert accuracy >= 0.985, per_style
    assert min(per_style.values()) >= 0.96, per_style


def test_naive_resize_fails_on_the_same_images(rendered, predictor):
    """The original approach (squash to 28x28, no inversion or centring) really fails here, so the
    test above measures preprocessing, not an easy data set."""
    import io

    from PIL import Image

    arrays = [np.asarray(Image.open(io.BytesIO(data)).convert("L").resize((28, 28)), np.float32) / 255
              for data, _ in rendered]
    labels = np.array([label for _, label in rendered])
    accuracy = np.mean(predictor.predict(np.stack(arrays)).argmax(axis=1) == labels)
    assert accuracy < 0.6
