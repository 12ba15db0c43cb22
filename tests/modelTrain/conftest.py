"""Fixtures for the training scripts: the npz's path, a script runner, one small trained run."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def mnist_npz():
    """Path of the MNIST npz: MNIST_NPZ (as .ci/run sets it), else ../shared/data/mnist.npz."""
    path = Path(os.environ.get("MNIST_NPZ", ROOT.parent / "shared" / "data" / "mnist.npz"))
    assert path.is_file(), f"no MNIST npz at {path}: set MNIST_NPZ"
    return path.resolve()


def run_script(script, *args):
    """Run modelTrain/<script> from the repository root, as the README says to."""
    return subprocess.run(
        [sys.executable, f"modelTrain/{script}", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="session")
def run():
    return run_script


@pytest.fixture(scope="session")
def small_run_args(mnist_npz):
    """One epoch on 2,000 real images: enough to exercise every step, a few seconds of CPU."""
    return ("--data", mnist_npz, "--limit", "2000", "--epochs", "1", "--seed", "3")


@pytest.fixture(scope="session")
def small_run(tmp_path_factory, small_run_args):
    """train.py's output folder after a quick run of the default architecture on the npz."""
    out = tmp_path_factory.mktemp("small_run")
    result = run_script("train.py", *small_run_args, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out
