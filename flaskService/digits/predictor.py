"""The model behind the API: (N, 28, 28) float32 arrays in, (N, classes) probabilities out.

Keras's `predict` is built for large batches and spends tens of milliseconds per call on overhead,
so the model is served by LiteRT (TFLite), whose interpreter answers one digit in microseconds.
If a model cannot be converted, Keras serves it, with a warning in the log.

A model's conversion is found, by the sha256 of the model file, in one of two places:
- beside the model, `model.<sha256[:16]>.tflite`, written by `python -m flaskService
  convert model.h5`. The image makes it when it is built, so its final stage serves without
  TensorFlow (requirements.txt has none; requirements-train.txt adds it);
- a cache under the temp directory, filled before any worker starts by the check that gunicorn's
  master runs in a child process (flaskService/rollout.py) when TensorFlow is installed
  (development): a worker that finds it never imports TensorFlow, which alone costs ~600 MB RSS
  and seconds of CPU per worker.
"""
import argparse
import contextlib
import functools
import importlib.util
import io
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from .model import (DIGITS, NOT_A_DIGIT, NUM_CLASSES, SEVERAL_DIGITS, ModelLoadError, check_model_file, contract_of,
                    load_model, sha256_of)

log = logging.getLogger(__name__)

BATCH_SIZES = DIGITS.batch_sizes
_TINY = np.finfo(np.float32).tiny  # looked up once, not per request


class Classification:
    """What the model says of each of N images, as arrays. Two questions, answered apart:
    - which digit: the ten digit probabilities given that the image is one digit (they add up to 1),
      the likeliest digit and its probability (`confidence`, calibrated: of answers given with
      confidence p, about p are right);
    - is it one digit at all: its probability (`digit_score`; None for a digits-only model, which
      cannot tell), whether that clears the threshold (`is_digit`), and if not, why not (`reasons`:
      "not_a_digit" or "several_digits")."""

    def __init__(self, probabilities, min_digit_score):
        digits = probabilities[:, :NUM_CLASSES]
        digit_score = digits.sum(axis=1)
        self.probabilities = digits / np.maximum(digit_score, _TINY)[:, None]
        self.digits = self.probabilities.argmax(axis=1)
        self.confidence = self.probabilities[np.arange(len(digits)), self.digits]
        if probabilities.shape[1] == NUM_CLASSES:
            self.digit_score = None
            self.is_digit = np.ones(len(digits), bool)
            self.reasons = [None] * len(digits)
            return
        self.digit_score = digit_score
        self.is_digit = self.digit_score >= min_digit_score
        several = probabilities[:, SEVERAL_DIGITS] > probabilities[:, NOT_A_DIGIT]
        self.reasons = [None if ok else ("several_digits" if many else "not_a_digit")
                        for ok, many in zip(self.is_digit, several)]


class Predictor:
    """Holds one model and the fastest way this machine has to run it."""

    def __init__(self, model, name="mnist", version="unknown", sha256=None, backend="auto", tflite=None,
                 contract=DIGITS):
        """`model`: the Keras model, or None when `tflite` (its conversion) is given; `contract`: the
        shapes it keeps (model.CONTRACTS)."""
        self.model = model
        self.name = name
        self.version = version
        self.sha256 = sha256
        self.contract = contract
        self.input_shape = contract.input_shape
        self.batch_sizes = contract.batch_sizes
        self._interpreters = {}
        self._lock = threading.Lock()  # a LiteRT interpreter serves one call at a time
        self.backend = "keras"
        if tflite is not None:
            self._tflite = tflite
            self.backend = "litert"
        elif backend in ("auto", "litert"):
            try:
                self._tflite = to_tflite(model)
                self.backend = "litert"
            except Exception as e:  # any converter failure: Keras still gives right answers
                if backend == "litert":
                    raise
                log.warning("LiteRT conversion failed (%s); serving through Keras, which is slower", e)

    @classmethod
    def from_path(cls, path, backend="auto", contract=None):
        """The model at `path`, which must keep `contract` (any of model.CONTRACTS when None)."""
        path = check_model_file(path)
        sha256 = sha256_of(path)
        card = {"name": path.stem if path.stem != "model" else "mnist", "version": sha256[:12], "sha256": sha256,
                "backend": backend}
        if backend != "keras":
            for conversion in (conversion_path(path, sha256), _cache_path(sha256)):
                if conversion is not None and conversion.is_file():
                    tflite = conversion.read_bytes()
                    try:
                        converted = cls(None, tflite=tflite, contract=contract_of_tflite(tflite, contract), **card)
                        converted._interpreter(1)
                        return converted
                    except Exception as e:  # a truncated or foreign file: convert again, as if it were not there
                        log.warning("ignoring the LiteRT model %s: %s", conversion, e)
        if not can_convert():  # no conversion that loads, and no TensorFlow to make one or to serve with
            raise ModelLoadError(_cannot_serve(path, backend, sha256))
        model = load_model(path, contract)
        predictor = cls(model, contract=contract_of(model.input_shape[1:]), **card)
        cache = _cache_path(sha256)
        if predictor.backend == "litert" and cache is not None:
            _store(cache, predictor._tflite)
        return predictor

    def classify(self, images, min_digit_score):
        """(N, 28, 28) float32 in [0, 1] -> a Classification of each image."""
        return Classification(self.predict(images), min_digit_score)

    def predict(self, images):
        """(N, 28, 28) or (N, 28, 28, 1) float32 in [0, 1] -> (N, 10) float32 probabilities, or (N, 12)
        for a model that can say an image is not one digit (model.OUTPUT_WIDTHS)."""
        images = np.asarray(images, dtype=np.float32).reshape(-1, *self.input_shape)
        if self.backend == "keras":
            return np.asarray(self.model(images, training=False), dtype=np.float32)
        out = np.empty((len(images), *self.output_shape), np.float32)
        for start in range(0, len(images), self.batch_sizes[-1]):
            chunk = images[start:start + self.batch_sizes[-1]]
            out[start:start + len(chunk)] = self._invoke(chunk)
        return out

    def _invoke(self, chunk):
        count = len(chunk)
        size = next(n for n in self.batch_sizes if n >= count)
        if count < size:
            chunk = np.concatenate([chunk, np.zeros((size - count, *self.input_shape), np.float32)])
        with self._lock:
            interpreter, input_index, output_index = self._interpreter(size)
            interpreter.set_tensor(input_index, chunk)
            interpreter.invoke()
            return interpreter.get_tensor(output_index)[:count].copy()

    @functools.cached_property
    def output_shape(self):
        """What the model gives per image: (10,) or (12,) probabilities for a digit model
        (model.OUTPUT_WIDTHS), (frames, classes) for the number model; read once, not per request."""
        if self.backend == "keras":
            return tuple(self.model.output_shape[1:])
        return tuple(int(n) for n in self._interpreter(1)[0].get_output_details()[0]["shape"][1:])

    @property
    def outputs(self):
        """How many probabilities the model gives per image (a digit model)."""
        return self.output_shape[-1]

    def _interpreter(self, size):
        if size not in self._interpreters:
            from ai_edge_litert.interpreter import Interpreter

            # One thread per interpreter: gunicorn runs one worker per core, and more threads
            # would only make workers fight over cores.
            interpreter = Interpreter(model_content=self._tflite, num_threads=1)
            input_index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(input_index, [size, *self.input_shape])
            interpreter.allocate_tensors()
            self._interpreters[size] = (interpreter, input_index, interpreter.get_output_details()[0]["index"])
        return self._interpreters[size]

    def warm_up(self):
        """Build every interpreter and run each once, so the first requests are as fast as the rest."""
        for size in self.batch_sizes if self.backend == "litert" else (1,):
            self.predict(np.zeros((size, *self.input_shape), np.float32))


def contract_of_tflite(tflite, expected=None):
    """The contract (model.CONTRACTS) a LiteRT model keeps, read from its input and output shapes."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite, num_threads=1)
    shapes = [tuple(int(n) for n in d["shape"][1:]) for d in (interpreter.get_input_details()[0],
                                                             interpreter.get_output_details()[0])]
    contract = contract_of(*shapes)
    if contract is None or (expected is not None and contract != expected):
        raise ModelLoadError(f"a LiteRT model of shapes {shapes} is not the model expected here")
    return contract


def conversion_path(path, sha256=None):
    """Where `convert` puts the LiteRT conversion of the model at `path`: beside it, named by the
    model file's sha256, so a changed model never meets the conversion of another."""
    path = Path(path)
    return path.with_name(f"{path.stem}.{(sha256 or sha256_of(path))[:16]}.tflite")


def can_convert():
    """TensorFlow and Keras are installed (requirements-train.txt), without importing them."""
    return all(importlib.util.find_spec(name) is not None for name in ("tensorflow", "keras"))


def check_servable(path, backend="auto", sha256=None):
    """Raise ModelLoadError, with the command that fixes it, if the model at `path` cannot be served
    here: no conversion of it, and no TensorFlow to convert it or to run it with Keras."""
    if can_convert():
        return
    sha256 = sha256 or sha256_of(path)
    if backend == "keras" or not any(p is not None and p.is_file()
                                     for p in (conversion_path(path, sha256), _cache_path(sha256))):
        raise ModelLoadError(_cannot_serve(path, backend, sha256))


def _cannot_serve(path, backend, sha256):
    if backend == "keras":
        return ("INFERENCE_BACKEND=keras needs TensorFlow and Keras, which this installation does not have "
                "(pip install -r requirements-train.txt); or leave it at auto for LiteRT")
    return (f"{path} has no usable LiteRT conversion beside it ({conversion_path(path, sha256).name}) and there "
            f"is no TensorFlow here to make one; make it where TensorFlow is installed (pip install -r "
            f"requirements-train.txt): python -m flaskService convert {path}")


def convert(path):
    """Write the LiteRT conversion of the model at `path` beside it (needs TensorFlow); its path."""
    path = check_model_file(path)
    sha256 = sha256_of(path)
    target = conversion_path(path, sha256)
    _write(target, to_tflite(load_model(path)))
    return target


def _cache_path(sha256):
    """Where the conversion of the model with this sha256 is kept, or None: no directory of our own
    can be made under the temp directory (read-only), or the one there is not only ours to write."""
    directory = Path(tempfile.gettempdir()) / f"flaskService-{os.getuid()}"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        owner = directory.stat()
    except OSError:
        return None
    if owner.st_uid != os.getuid() or owner.st_mode & 0o022:  # anyone else could plant a model there
        return None
    return directory / f"{sha256}.tflite"


def _store(cache, tflite):
    try:
        _write(cache, tflite)
    except OSError as e:
        log.info("cannot cache the LiteRT model in %s: %s", cache.parent, e)


def _write(target, tflite):
    """Write atomically: workers converting at the same time each rename a whole file."""
    partial = target.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(tflite)
    partial.replace(target)


def to_tflite(model):
    """A Keras model -> LiteRT flatbuffer bytes. from_keras_model freezes the weights into constants
    and folds batch normalisation into the convolutions (a converted tf.function keeps them as
    variables and runs 5x slower)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    # The converter exports a SavedModel first and prints its signature to stdout; keep logs clean.
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m flaskService", description=(
        "Convert a Keras model (.h5 or .keras) to LiteRT beside it, as the service serves it without TensorFlow."))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("convert", help="write MODEL's conversion beside it").add_argument("model", nargs="+")
    args = parser.parse_args(argv)
    for model in args.model:
        try:
            print(convert(model))
        except ModelLoadError as e:
            parser.exit(1, f"error: {e}\n")

