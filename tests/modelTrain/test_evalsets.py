"""The evaluation sets (modelTrain/evalsets/): the code never imports the tests, and the sets are
the images the cards were measured on.

The digests below are the sets' outputs before they moved out of tests/ (main d2102d1, where they
were tests/renders.py, tests/numbers.py and tests/nondigits.py): flaskService/model.json and
modelTrain/cards/number.json hold figures measured on these images. Like test_preprocess_identical.py's digest they
depend on the pinned Pillow and numpy and on the fonts and data Debian installs.
"""
import ast
import hashlib

import numpy as np
import pytest

from modelTrain.evalsets import nondigits, numbers, renders
from tests.helpers import ROOT


def imports(path):
    """The absolute module names a Python file imports, at any depth of its code."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


@pytest.mark.parametrize("package", ("modelTrain", "flaskService", "benchmarks"))
def test_the_code_never_imports_the_tests(package):
    """Training, evaluation and the service run without the test tree."""
    found = [f"{path.relative_to(ROOT)}: {name}" for path in sorted((ROOT / package).rglob("*.py"))
             for name in imports(path) if name == "tests" or name.startswith("tests.")]
    assert found == []


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(("index", "kind", "style", "digest", "text"), (
    (0, "separate", "paper_png", "d46e92d1d0edd9adcbde698c1176b51cec4e287f9d2fe51cc6e3ae4fcd974c2e", "03504694"),
    (7, "overlapping", "photo_jpeg", "c1c0674ba02b9bbbf8977d621b2ce65e01232165301efc38a1c20b25cb5dff68", "101327"),
    (123, "slant", "canvas_png", "deed4a1caf770ee25f3cad493df2d2a3296c928d7bf9a8dc70d60a3af183914e", "490397"),
))
def test_numbers_are_the_measured_images(mnist, index, kind, style, digest, text):
    number = numbers.number(mnist, index, kind, style)
    assert (sha256(number.data), number.text) == (digest, text)


@pytest.mark.parametrize(("index", "style", "digest", "text"), (
    (0, "paper_png", "41808c344fd5b6c99dbed05638d2a46db6ae83a3293a2d93195cb5e91aedc6ce", "584705"),
    (4, "noisy_scan", "c982a213387f5ee731c311eb022895905a5db1fd968498c44ac30dfc2e6eae9e", "7726112"),
))
def test_printed_numbers_are_the_measured_images(index, style, digest, text):
    number = numbers.printed_number(index, style)
    assert (sha256(number.data), number.text, number.kind) == (digest, text, "printed")


@pytest.mark.parametrize(("index", "style", "digest"), (
    (0, "paper_png", "1936908a5e21cdbdedd90cd473e35aee2142575342a4ff835f189b25a6d523d9"),
    (1, "noisy_scan", "f5561a5fccf83779f020783c238c083ef79e89359c3ffb25bae3189014f9e8ab"),
    (2, "white_on_black_jpeg", "978a821769cf03a531acbb40f9607be4de53487373887bea037ebfbc8500afc1"),
))
def test_renders_are_the_measured_images(mnist, index, style, digest):
    assert sha256(renders.render(mnist["x_test"][index], style, np.random.default_rng(index))) == digest


@pytest.mark.parametrize(("index", "kind", "medium", "digest"), (
    (3, "comb", "photo_jpeg", "500354a3a3dc4f51fa87451d3c487f5a3293bf48bc8121ab0305f82f235d3a09"),
    (4, "tianzige", "canvas_png", "0bf6eeeda335fcd61966699ca556ffdd97fe3c4c32658ef5769ee8e9eddb3612"),
))
def test_backgrounds_are_the_measured_images(mnist, index, kind, medium, digest):
    data = renders.render_background(mnist["x_test"][index], kind, medium, np.random.default_rng(index))
    assert sha256(data) == digest


NONDIGITS = {
    "font_letters": "bc8e591d66c51b8ef7f6e22438ca36a8beeb33cd5af0545b475d83710fc8c6d0",
    "stroke_letters": "4d09b341c618aa3917b7363db89e9021e8e12af6e6e4d8310a0e7a098cbcf7af",
    "symbols": "810c2dd9dd93a265511612db8b4c9b66395bef1d87265be37d320606a5a04d1b",
    "doodles": "46d0e83654d38566149b4a6d1bc6e7fbe160a30f26bf3f7ad74e4cdaca976fbd",
    "scribbles": "09a87115cde7b986494d86800dbbb8c75eedf605c1d0fd5209dc97003f0f02a5",
    "hatching": "4d384f4e0bdb354fcd0e25198ca49da79bea2b2cde5faa3e5d4cff3b2f4b2e5c",
    "photos": "2156dfab29070608cc6f93f4440028945af19df972da013e79659ab8fa5e52db",
    "noise": "5670deda31dfdcbbae4e626d8e5d6838dc1642a2ec91f759a0b6a3a2bcb8c067",
    "fashion_mnist": "1b9dd5b9a83c3d09ea255a58773f8879cc6d7bef13b1837d39a907d174d22a13",
    "several_digits": "46f632e3792a87adf1290b7e244255d2f12309b90bd1accb5817d96d10b8f369",
}


def test_nondigits_are_the_measured_images(mnist):
    """The first image of every kind, from the seed evaluate.py --rejection uses (2026)."""
    images = nondigits.evaluation_set(mnist["x_test"], per_kind=1)
    assert {kind: sha256(kind_images[0]) for kind, kind_images in images.items()} == NONDIGITS
