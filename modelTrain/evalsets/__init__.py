"""The evaluation sets: images built from MNIST's test split and from generators training never
sees (renders, numbers, nondigits). Evaluation and the tests import them; they import no test."""
