"""The command-line conventions train.py and evaluate.py share: bad arguments or data are one line
on stderr and exit status 2, and argparse's own usage errors look the same; and the checks of what
train.py's options name (output folders, the model to fine-tune)."""

import argparse


class InputError(Exception):
    """Bad arguments or data: reported as one line on stderr, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2), like our own errors."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text):
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def make_folders(*options):
    """Create each (option, folder) pair's folder; one that cannot be is an InputError naming it."""
    for option, folder in options:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"{option} {folder}: {error.strerror}") from None


def model_to_fine_tune(path, outputs):
    """The model `--init` names, if the service can load it and it has `outputs` outputs."""
    from flaskService.digits.model import ModelLoadError, load_model  # Keras: only when fine-tuning

    try:
        model = load_model(path)
    except ModelLoadError as error:
        raise InputError(f"--init: {error}") from None
    if model.output_shape[-1] != outputs:
        raise InputError(f"--init: {path} has {model.output_shape[-1]} outputs; fine-tuning needs one of "
                         f"ours with {outputs} (ten digits, not a digit, several digits)")
    return model


# argparse names the type in its message: "invalid positive integer value: '0'".
positive_int.__name__ = "positive integer"
non_negative_int.__name__ = "non-negative integer"
