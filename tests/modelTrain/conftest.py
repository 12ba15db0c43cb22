"""Fixtures for the training scripts: a script runner and one small trained run (the npz's path,
`mnist_npz`, comes from tests/conftest.py)."""
import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.fixture(scope="session")
def run():
    """`run(script, *args)`: run modelTrain/<script> from the repository root, as the README says to."""

    def run_script(script, *args):
        return subprocess.run(
            [sys.executable, f"modelTrain/{script}", *map(str, args)],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )

    return run_script


@pytest.fixture(scope="session")
def small_run_args(mnist_npz):
    """One epoch on 2,000 real images: enough to exercise every step, a few seconds of CPU."""
    return ("--data", mnist_npz, "--limit", "2000", "--epochs", "1", "--seed", "3")


@pytest.fixture(scope="session")
def small_run(tmp_path_factory, small_run_args, run):
    """train.py's output folder after a quick run of the default architecture on the npz."""
    out = tmp_path_factory.mktemp("small_run")
    result = run("train.py", *small_run_args, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out
