"""The model behind the API: (N, 28, 28) float32 arrays in, (N, 10) probabilities out.

Keras's `predict` is built for large batches and spends tens of milliseconds per call on overhead,
so each worker converts the loaded model once to LiteRT (TFLite), whose interpreter answers one
digit in microseconds. If a model cannot be converted, Keras serves it, with a warning in the log.
"""
import contextlib
import hashlib
import io
import logging
import threading
from pathlib import Path

import numpy as np

from .model import load_model

log = logging.getLogger(__name__)

# Interpreters are sized for these batch sizes; a request is padded up to the next one, so no
# request pays for re-allocating tensors. 256 is the API's largest batch.
BATCH_SIZES = (1, 4, 16, 64, 256)


class Predictor:
    """Holds one model and the fastest way this machine has to run it."""

    def __init__(self, model, name="mnist", version="unknown", sha256=None, backend="auto"):
        self.model = model
        self.name = name
        self.version = version
        self.sha256 = sha256
        self._interpreters = {}
        self._lock = threading.Lock()  # a LiteRT interpreter serves one call at a time
        self.backend = "keras"
        if backend in ("auto", "litert"):
            try:
                self._tflite = _to_tflite(model)
                self.backend = "litert"
            except Exception as e:  # any converter failure: Keras still gives right answers
                if backend == "litert":
                    raise
                log.warning("LiteRT conversion failed (%s); serving through Keras, which is slower", e)

    @classmethod
    def from_path(cls, path, backend="auto"):
        path = Path(path)
        model = load_model(path)
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        return cls(model, name=path.stem if path.stem != "model" else "mnist",
                   version=sha256[:12], sha256=sha256, backend=backend)

    def predict(self, images):
        """(N, 28, 28) or (N, 28, 28, 1) float32 in [0, 1] -> (N, 10) float32 probabilities."""
        images = np.asarray(images, dtype=np.float32).reshape(-1, 28, 28, 1)
        if self.backend == "keras":
            return np.asarray(self.model(images, training=False), dtype=np.float32)
        out = np.empty((len(images), 10), np.float32)
        for start in range(0, len(images), BATCH_SIZES[-1]):
            chunk = images[start:start + BATCH_SIZES[-1]]
            out[start:start + len(chunk)] = self._invoke(chunk)
        return out

    def _invoke(self, chunk):
        count = len(chunk)
        size = next(n for n in BATCH_SIZES if n >= count)
        if count < size:
            chunk = np.concatenate([chunk, np.zeros((size - count, 28, 28, 1), np.float32)])
        with self._lock:
            interpreter, input_index, output_index = self._interpreter(size)
            interpreter.set_tensor(input_index, chunk)
            interpreter.invoke()
            return interpreter.get_tensor(output_index)[:count].copy()

    def _interpreter(self, size):
        if size not in self._interpreters:
            from ai_edge_litert.interpreter import Interpreter

            # One thread per interpreter: gunicorn runs one worker per core, and more threads
            # would only make workers fight over cores.
            interpreter = Interpreter(model_content=self._tflite, num_threads=1)
            input_index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(input_index, [size, 28, 28, 1])
            interpreter.allocate_tensors()
            self._interpreters[size] = (interpreter, input_index, interpreter.get_output_details()[0]["index"])
        return self._interpreters[size]

    def warm_up(self):
        """Build every interpreter and run each once, so the first requests are as fast as the rest."""
        for size in BATCH_SIZES if self.backend == "litert" else (1,):
            self.predict(np.zeros((size, 28, 28), np.float32))


def _to_tflite(model):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    # The converter exports a SavedModel first and prints its signature to stdout; keep logs clean.
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()
