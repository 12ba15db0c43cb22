"""The one model loader: a path to a .h5 (Keras 3 or Keras 2) or .keras file in, a Keras model out."""
import hashlib
import json
import zipfile
from collections import namedtuple
from pathlib import Path

import h5py


class ModelLoadError(Exception):
    """The model file is missing, unreadable or not a digit classifier; the message says which."""


INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10  # the digits
# After the digits a model may have two more outputs, so that it can say the image is not one digit.
NOT_A_DIGIT, SEVERAL_DIGITS = NUM_CLASSES, NUM_CLASSES + 1
OUTPUT_WIDTHS = (NUM_CLASSES, NUM_CLASSES + 2)  # a digits-only (legacy) model, or one that can say no

Contract = namedtuple("Contract", "input_shape output_shapes batch_sizes")
Contract.__doc__ = """What a model takes and gives per image, and the batch sizes its interpreters are
built for: a request is padded up to the next one, so none pays for re-allocating tensors."""
# The digit classifier: 256 is the API's largest batch.
DIGITS = Contract(INPUT_SHAPE, tuple((width,) for width in OUTPUT_WIDTHS), (1, 4, 16, 64, 256))
# The number reader (flaskService/digits/sequence.py): a 32x256 line in, 64 frames of CTC blank + ten digits
# out. /read reads one image at a time; a batch of 16 lines already holds ~8 MB of activations.
NUMBERS = Contract((32, 256, 1), ((64, 11),), (1, 4, 16))
CONTRACTS = (DIGITS, NUMBERS)
CONTRACT_NAMES = {"digits": DIGITS, "numbers": NUMBERS}


def contract_of(input_shape, output_shape=None):
    """The contract a model with these shapes (without the batch axis) keeps, or None."""
    return next((c for c in CONTRACTS if tuple(input_shape) == c.input_shape
                 and (output_shape is None or tuple(output_shape) in c.output_shapes)), None)


def sha256_of(path):
    """The model file's sha256 (hex): its identity in the cache, the model card and the API's version."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_model(path, contract=None):
    """Load a model that keeps `contract` (any of CONTRACTS when None): the digit classifier takes
    (N, 28, 28, 1) float32 in [0, 1] and returns (N, 10) or (N, 12) probabilities (OUTPUT_WIDTHS)."""
    import keras  # here, not at the top: gunicorn's master checks the file without loading TensorFlow

    path = check_model_file(path)
    try:
        if path.suffix == ".h5" and _saved_by_keras2(path):
            model = _load_keras2_h5(path)
        else:
            model = keras.models.load_model(path, compile=False)
    except Exception as e:  # h5py, zipfile and Keras each raise their own types for a bad file
        raise ModelLoadError(f"cannot load model {path}: {_first_line(e)}") from None
    if contract_of(model.input_shape[1:], model.output_shape[1:]) not in ((contract,) if contract else CONTRACTS):
        expected = " or ".join(f"{(None, *c.input_shape)} -> {' or '.join(str((None, *o)) for o in c.output_shapes)}"
                               for c in ((contract,) if contract else CONTRACTS))
        raise ModelLoadError(f"{path} takes {model.input_shape} and returns {model.output_shape}; expected {expected}")
    return model


def check_model_file(path):
    """Fail fast, without TensorFlow, if `path` is not a readable .h5 or .keras model file."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path} (set MODEL_PATH)")
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                archive.getinfo("config.json")
        else:
            with h5py.File(path, "r") as f:
                if "model_config" not in f.attrs:
                    raise ValueError("an HDF5 file without a model in it (weights only?)")
    except Exception as e:
        raise ModelLoadError(f"cannot read model {path}: {_first_line(e)}") from None
    return path


def _saved_by_keras2(path):
    with h5py.File(path, "r") as f:
        version = f.attrs.get("keras_version", b"")
    version = version.decode() if isinstance(version, bytes) else str(version)
    return version.startswith(("1.", "2."))


def _load_keras2_h5(path):
    """Keras 3 misreads Keras 2's `batch_input_shape` as an input shape (adding a second batch axis
    and failing with "Kernel shape must have the same length as input"), so rebuild the model from
    its config with an explicit InputLayer, then load the weights by layer name."""
    from keras.src.legacy.saving import legacy_h5_format, saving_utils

    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        if config["class_name"] == "Sequential":
            layers = config["config"]["layers"]
            batch_shape = layers[0]["config"].pop("batch_input_shape", None)
            if batch_shape is not None:
                layers.insert(0, {"class_name": "InputLayer", "config": {"batch_shape": batch_shape}})
        model = saving_utils.model_from_config(config)
        legacy_h5_format.load_weights_from_hdf5_group(f["model_weights"], model)
    return model


def _first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
