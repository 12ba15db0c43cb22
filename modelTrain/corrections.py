"""
Title: Corrections from the service, as training data
Description: The digits people corrected through POST /feedback, loaded for `train.py --feedback`
and mixed into its training data.

A source is either the service's database, named by the same URL the service uses (FEEDBACK_DB:
`sqlite:///...` or `postgresql://...`), or what GET /feedback/export returned: the zip, or the folder
it unzips to (`0/ ... 9/`, one image per correction).

From the database, each correction's 28x28 input is used exactly as the model saw it when the
correction came in. From an export, the original images go through the service's preprocessing
now, as `train.py --data DIR` does with any folder.
"""

import zipfile
from pathlib import Path

import numpy as np

from flaskService.digits.errors import ImageError
from flaskService.config import from_environment
from flaskService.feedback_store import INPUT_DTYPE, FeedbackStore, StoreUnavailable, describe
from flaskService.digits.model import INPUT_SHAPE, NUM_CLASSES
from flaskService.digits.preprocess import preprocess_image
from modelTrain.cli import InputError

DATABASE_SCHEMES = ("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")
# Share of the corrections held out, so that the card says how well the new model reads
# corrections it never trained on.
HELD_OUT_FRACTION = 0.2


class CorrectionsError(Exception):
    """The source cannot be read, or holds no correction; the message says which."""


def load_corrections(source):
    """(x, y) of every correction in `source`: float32 (n, 28, 28, 1) inputs and int64 labels."""
    source = str(source)
    if source.startswith(DATABASE_SCHEMES):
        images, labels = _from_database(source)
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            images, labels = _from_files(
                (name, lambda name=name: archive.read(name)) for name in archive.namelist())
    elif Path(source).is_dir():
        images, labels = _from_files(
            (path.relative_to(source).as_posix(), path.read_bytes) for path in sorted(Path(source).rglob("*")))
    else:
        raise CorrectionsError(f"{source}: not a database URL, an export zip or a folder")
    if not labels:
        raise CorrectionsError(f"{source}: holds no corrections")
    x = np.stack(images).astype("float32").reshape(-1, *INPUT_SHAPE)
    return x, np.array(labels, dtype="int64")


def _from_database(url):
    """The live corrections in the service's database: the store itself reads them, so corrections
    past FEEDBACK_RETENTION_DAYS (as the environment sets it, as for the service) are never trained on."""
    import sqlalchemy as sa

    database = sa.make_url(url).database
    if sa.make_url(url).get_backend_name() == "sqlite" and not Path(database or "").is_file():
        raise CorrectionsError(f"{url}: no such SQLite file")
    settings = from_environment()
    store = FeedbackStore(url, settings["FEEDBACK_MAX_ROWS"], settings["FEEDBACK_RETENTION_DAYS"],
                          settings["FEEDBACK_MAX_BYTES"])
    try:
        rows = list(store.rows("input", "label"))
    except StoreUnavailable as error:
        raise CorrectionsError(f"cannot read corrections: {error}") from None
    except (sa.exc.SQLAlchemyError, OSError) as error:
        raise CorrectionsError(f"cannot read corrections from {describe(url, error)}") from None
    finally:
        store.close()
    return [np.frombuffer(row.input, INPUT_DTYPE).reshape(28, 28) for row in rows], [row.label for row in rows]


def _from_files(entries):
    """Images named `<digit>/<anything>` (other files, such as feedback.csv, are not corrections)."""
    images, labels = [], []
    for name, read in entries:
        parts = name.split("/")
        if len(parts) != 2 or parts[0] not in {str(d) for d in range(NUM_CLASSES)} or not parts[1] \
                or parts[1].startswith("."):
            continue
        try:
            images.append(preprocess_image(read()))
        except (ImageError, OSError) as error:
            raise CorrectionsError(f"{name}: {error}") from None
        labels.append(int(parts[0]))
    return images, labels


def split_held_out(x, y, fraction, seed):
    """(train, held_out): `fraction` of the corrections, at random, are kept out of training so that
    the card can say how well the new model reads corrections it never saw."""
    order = np.random.default_rng(seed).permutation(len(y))
    count = round(len(y) * fraction)
    held_out, train = order[:count], order[count:]
    return (x[train], y[train]), (x[held_out], y[held_out])


def describe_source(source):
    """The source for the model card: a database URL without its password, or the path."""
    source = str(source)
    if source.startswith(DATABASE_SCHEMES):
        import sqlalchemy as sa

        return sa.make_url(source).render_as_string(hide_password=True)
    return source


def mix_in(train_data, source, weight, seed):
    """The training data with the corrections from `source` added `weight` times each (they are few,
    and exactly the digits the model got wrong), and a description of them for the card holding the
    held-out share (x, y)."""
    try:
        x, y = load_corrections(source)
    except CorrectionsError as error:
        raise InputError(str(error)) from None
    (x_used, y_used), held_out = split_held_out(x, y, HELD_OUT_FRACTION, seed)
    mixed = (np.concatenate([train_data[0], np.repeat(x_used, weight, axis=0)]),
             np.concatenate([train_data[1], np.repeat(y_used, weight)]))
    return mixed, {"source": describe_source(source), "corrections": len(y), "trained_on": len(y_used),
                   "weight": weight, "held_out": held_out}
