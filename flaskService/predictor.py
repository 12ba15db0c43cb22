"""The model behind the API: (N, 28, 28) float32 arrays in, (N, 10) probabilities out.

Keras's `predict` is built for large batches and spends tens of milliseconds per call on overhead,
so the loaded model is converted once to LiteRT (TFLite), whose interpreter answers one digit in
microseconds. If a model cannot be converted, Keras serves it, with a warning in the log.

The conversion is cached by the model file's sha256 (under the temp directory), and gunicorn's
master makes it before forking (`convert_once`): a worker that finds it never imports TensorFlow,
which alone costs ~600 MB RSS and seconds of CPU per worker.
"""
import contextlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from .model import INPUT_SHAPE, NOT_A_DIGIT, NUM_CLASSES, SEVERAL_DIGITS, check_model_file, load_model, sha256_of

log = logging.getLogger(__name__)

# Interpreters are sized for these batch sizes; a request is padded up to the next one, so no
# request pays for re-allocating tensors. 256 is the API's largest batch.
BATCH_SIZES = (1, 4, 16, 64, 256)


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
        self.probabilities = digits / np.maximum(digit_score, np.finfo(np.float32).tiny)[:, None]
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

    def __init__(self, model, name="mnist", version="unknown", sha256=None, backend="auto", tflite=None):
        """`model`: the Keras model, or None when `tflite` (its conversion) is given."""
        self.model = model
        self.name = name
        self.version = version
        self.sha256 = sha256
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
    def from_path(cls, path, backend="auto"):
        path = check_model_file(path)
        sha256 = sha256_of(path)
        card = {"name": path.stem if path.stem != "model" else "mnist", "version": sha256[:12], "sha256": sha256,
                "backend": backend}
        cache = _cache_path(sha256)
        if backend != "keras" and cache is not None and cache.is_file():
            cached = cls(None, tflite=cache.read_bytes(), **card)
            try:
                cached._interpreter(1)
                return cached
            except Exception as e:  # a truncated or foreign file: convert again, as if it were not there
                log.warning("ignoring the cached LiteRT model %s: %s", cache, e)
        predictor = cls(load_model(path), **card)
        if predictor.backend == "litert" and cache is not None:
            _store(cache, predictor._tflite)
        return predictor

    def classify(self, images, min_digit_score):
        """(N, 28, 28) float32 in [0, 1] -> a Classification of each image."""
        return Classification(self.predict(images), min_digit_score)

    def predict(self, images):
        """(N, 28, 28) or (N, 28, 28, 1) float32 in [0, 1] -> (N, 10) float32 probabilities, or (N, 12)
        for a model that can say an image is not one digit (model.OUTPUT_WIDTHS)."""
        images = np.asarray(images, dtype=np.float32).reshape(-1, *INPUT_SHAPE)
        if self.backend == "keras":
            return np.asarray(self.model(images, training=False), dtype=np.float32)
        out = np.empty((len(images), self.outputs), np.float32)
        for start in range(0, len(images), BATCH_SIZES[-1]):
            chunk = images[start:start + BATCH_SIZES[-1]]
            out[start:start + len(chunk)] = self._invoke(chunk)
        return out

    def _invoke(self, chunk):
        count = len(chunk)
        size = next(n for n in BATCH_SIZES if n >= count)
        if count < size:
            chunk = np.concatenate([chunk, np.zeros((size - count, *INPUT_SHAPE), np.float32)])
        with self._lock:
            interpreter, input_index, output_index = self._interpreter(size)
            interpreter.set_tensor(input_index, chunk)
            interpreter.invoke()
            return interpreter.get_tensor(output_index)[:count].copy()

    @property
    def outputs(self):
        """How many probabilities the model gives per image (model.OUTPUT_WIDTHS)."""
        if self.backend == "keras":
            return self.model.output_shape[-1]
        return int(self._interpreter(1)[0].get_output_details()[0]["shape"][-1])

    def _interpreter(self, size):
        if size not in self._interpreters:
            from ai_edge_litert.interpreter import Interpreter

            # One thread per interpreter: gunicorn runs one worker per core, and more threads
            # would only make workers fight over cores.
            interpreter = Interpreter(model_content=self._tflite, num_threads=1)
            input_index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(input_index, [size, *INPUT_SHAPE])
            interpreter.allocate_tensors()
            self._interpreters[size] = (interpreter, input_index, interpreter.get_output_details()[0]["index"])
        return self._interpreters[size]

    def warm_up(self):
        """Build every interpreter and run each once, so the first requests are as fast as the rest."""
        for size in BATCH_SIZES if self.backend == "litert" else (1,):
            self.predict(np.zeros((size, *INPUT_SHAPE), np.float32))


def convert_once(path, backend="auto"):
    """Convert the model in a child process (TensorFlow is not fork-safe, so gunicorn's master must
    not import it) and cache the result for the workers. A failure only costs the workers the time
    to try again themselves, so it is logged, never raised."""
    cache = _cache_path(sha256_of(path))
    if backend == "keras" or cache is None or cache.is_file():
        return
    convert = "import sys; from flaskService.predictor import Predictor; Predictor.from_path(sys.argv[1], 'litert')"
    try:
        done = subprocess.run([sys.executable, "-c", convert, str(Path(path).resolve())], capture_output=True,
                              text=True, cwd=Path(__file__).resolve().parent.parent, timeout=300)
        failure = done.returncode and (done.stderr.strip().splitlines() or ["no output"])[-1]
    except subprocess.TimeoutExpired:
        failure = "took more than 300 s"
    if failure:
        log.warning("converting %s ahead of the workers failed; each worker will try: %s", path, failure)


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
    """Write atomically: workers converting at the same time each rename a whole file."""
    try:
        partial = cache.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(tflite)
        partial.replace(cache)
    except OSError as e:
        log.info("cannot cache the LiteRT model in %s: %s", cache.parent, e)


def to_tflite(model):
    """A Keras model -> LiteRT flatbuffer bytes. from_keras_model freezes the weights into constants
    and folds batch normalisation into the convolutions (a converted tf.function keeps them as
    variables and runs 5x slower)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    # The converter exports a SavedModel first and prints its signature to stdout; keep logs clean.
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()
