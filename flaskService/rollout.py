"""The model gunicorn's workers serve, and how a new one replaces it (gunicorn.conf.py's on_starting
and on_reload).

Workers never load the file at MODEL_PATH itself. The master copies it into a private directory,
with its LiteRT conversion and its card if they are beside it. A child process then checks the
copy as a worker would load it: the model loads, its conversion loads in LiteRT (or is made and
cached), and the self-check reads the drawn digits right. A child, because TensorFlow is not
fork-safe and the master forks every worker. Only then are new workers pointed at the copy.

A model that fails is never served. At start the master stops with one line. On SIGHUP the
workers keep the model they have, and any worker forked later (for the reload, or in place of
one that exits) loads the last copy that passed. It is a copy of the bytes, not a link, because
a file written over in place would change under a link too.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .digits.model import CONTRACT_NAMES, ModelLoadError, check_model_file, sha256_of
from .digits.predictor import check_servable, conversion_path

CHECK_TIMEOUT_S = 300  # converting with TensorFlow on a busy machine takes tens of seconds


class Served:
    """A checked copy of a model: where the workers load it from, its sha256, and where it came from."""

    def __init__(self, path, sha256, source):
        self.path, self.sha256, self.source = path, sha256, source


# The settings that name a model, and which model each must be (model.CONTRACT_NAMES).
MODEL_SETTINGS = {"MODEL_PATH": "digits", "NUMBER_MODEL_PATH": "numbers"}
# Set in the master, one Served per setting; every worker it forks inherits them.
served = {}
_root = None  # the master's private directory of checked copies


def roll_out(setting, source, backend="auto"):
    """Check the model at `source` and make it the one new workers load for `setting` (returns its
    Served). Raises ModelLoadError, saying why in one line, and leaves the model served before in
    place, if the model cannot be served."""
    source = check_model_file(source)
    check_servable(source, backend)
    copy, sha256 = _stage(source)
    try:
        check_in_child(copy, backend, MODEL_SETTINGS[setting])
    except ModelLoadError as e:
        shutil.rmtree(copy.parent, ignore_errors=True)
        # The copy has the source's name: say what is wrong in the operator's terms.
        raise ModelLoadError(str(e).replace(str(copy.parent), str(source.parent))) from None
    previous = served.get(setting)
    served[setting] = Served(copy, sha256, source)
    if previous is not None:  # the workers that loaded it have it in memory
        shutil.rmtree(previous.path.parent, ignore_errors=True)
    return served[setting]


def clean_up():
    """Remove the master's copies (on exit)."""
    if _root is not None:
        shutil.rmtree(_root, ignore_errors=True)


def _stage(source):
    """Copy the model, its conversion and card into a new directory of their own; (copy, sha256)."""
    global _root
    try:
        if _root is None:
            _root = Path(tempfile.mkdtemp(prefix="flaskService-served-"))
        copy = Path(tempfile.mkdtemp(dir=_root)) / source.name
        shutil.copyfile(source, copy)
        sha256 = sha256_of(copy)  # of the bytes copied: the file at `source` may change at any time
        for beside, target in ((conversion_path(source, sha256), conversion_path(copy, sha256)),
                               (source.with_suffix(".json"), copy.with_suffix(".json"))):
            if beside.is_file():
                shutil.copyfile(beside, target)
    except OSError as e:
        raise ModelLoadError(f"cannot copy {source} into a private directory under {tempfile.gettempdir()} "
                             f"(set TMPDIR to a writable one): {e}") from None
    return copy, sha256


def check_in_child(path, backend="auto", kind="digits"):
    """Run `check` in a child process; raise ModelLoadError with its one-line reason if it fails."""
    script = "import sys; from flaskService.rollout import check; sys.exit(check(*sys.argv[1:]))"
    # The child's metrics must not join the server's (it would leave files behind in their directory).
    env = {name: value for name, value in os.environ.items() if name != "PROMETHEUS_MULTIPROC_DIR"}
    try:
        done = subprocess.run([sys.executable, "-c", script, str(path), backend, kind], capture_output=True, text=True,
                              env=env, cwd=Path(__file__).resolve().parent.parent, timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ModelLoadError(f"checking {path} took more than {CHECK_TIMEOUT_S} s") from None
    if done.returncode == 0:
        return
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    if errors:
        raise ModelLoadError(errors[-1].removeprefix("error: "))
    if done.returncode < 0:  # LiteRT and TensorFlow are C++: a bad file can crash them outright
        raise ModelLoadError(f"loading {path} killed the checking process ({signal.Signals(-done.returncode).name})")
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise ModelLoadError(f"checking {path} failed (exit {done.returncode}): {last}")


def check(path, backend="auto", kind="digits"):
    """In a child process: load the model at `path` as a worker would, as the `kind` of model
    (model.CONTRACT_NAMES) it must be, and run the self-check. 0, or 1 after printing one `error:`
    line."""
    from .digits import selfcheck
    from .digits.predictor import Predictor, contract_of_tflite

    try:
        path = check_model_file(path)
        conversion = conversion_path(path)
        # A conversion shipped beside the model must load: workers would otherwise pass over it and,
        # without TensorFlow (the image), fail; with it, serve something other than what was shipped.
        if backend != "keras" and conversion.is_file():
            try:
                tflite = conversion.read_bytes()
                Predictor(None, tflite=tflite, contract=contract_of_tflite(tflite, CONTRACT_NAMES[kind])).warm_up()
            except Exception as e:
                raise ModelLoadError(f"{conversion} does not load in LiteRT: {_first_line(e)}") from None
        # Converts and caches the conversion if need be.
        predictor = Predictor.from_path(path, backend, contract=CONTRACT_NAMES[kind])
        predictor.warm_up()
        failure = selfcheck.run(predictor)
        if failure:
            raise ModelLoadError(f"{path}: {failure}")
    except ModelLoadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # Keras, h5py and LiteRT each raise their own types
        print(f"error: cannot serve {path}: {type(e).__name__}: {_first_line(e)}", file=sys.stderr)
        return 1
    return 0


def _first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
