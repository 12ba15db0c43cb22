"""The command-line conventions train.py and evaluate.py share: bad arguments or data are one line
on stderr and exit status 2, and argparse's own usage errors look the same."""

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


# argparse names the type in its message: "invalid positive integer value: '0'".
positive_int.__name__ = "positive integer"
non_negative_int.__name__ = "non-negative integer"
