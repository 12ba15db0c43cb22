"""modelTrain/evaluate_numbers.py on a few numbers: the table, both readers and Tesseract, the card."""
import json

from modelTrain.evaluate_numbers import by_confidence
from modelTrain.evalsets.numbers import KINDS, Number
from tests.helpers import NUMBER_CARD_PATH, NUMBER_MODEL_PATH


def test_evaluate_numbers_prints_the_table_and_writes_the_card(run, mnist_npz, tmp_path):
    card_path = tmp_path / "number.json"
    result = run("evaluate_numbers.py", NUMBER_MODEL_PATH, "--data", mnist_npz, "--count", "20", "--printed", "6",
                 "--card", card_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "20 numbers from MNIST test digits" in result.stdout
    assert all(f"{kind:>12} " in result.stdout for kind in KINDS)
    card = json.loads(card_path.read_text())
    assert card["data"]["numbers"] == 20 and card["data"]["split"] == "test" and card["data"]["printed_numbers"] == 6
    for reader in ("sequence", "tesseract"):
        figures = card[reader]
        assert set(figures["per_kind"]) == set(KINDS)
        assert 0 <= figures["exact_match"] <= figures["per_digit"] <= 1 and 0 <= figures["printed"] <= 1
    assert card["sequence"]["per_kind"]["separate"] >= 0.75  # 4 separate numbers: 3 at least are read right
    assert card["sequence"]["cpu_ms_per_4_digit_number"]["median"] > 0
    assert card["tesseract"]["version"].startswith("tesseract")
    confidence = card["sequence"]["confidence"]
    assert 0 < confidence["mean"] <= 1 and confidence["exact"] == card["sequence"]["exact_match"]
    shares = [taken["share"] for taken in confidence["at_least"].values()]
    assert list(confidence["at_least"]) == ["0.5", "0.9", "0.99"] and shares == sorted(shares, reverse=True)
    assert "mean confidence" in result.stdout


def test_by_confidence_counts_what_a_caller_taking_only_confident_readings_gets():
    numbers = [Number(b"", text, "separate", "paper_png", []) for text in ("12", "34", "56", "78")]
    texts = ["12", "34", "50", "7"]
    confidences = [0.995, 0.95, 0.6, 0.015]
    assert by_confidence(numbers, texts, confidences) == {
        "mean": 0.64, "exact": 0.5,
        "at_least": {"0.5": {"share": 0.75, "exact": 0.6667}, "0.9": {"share": 0.5, "exact": 1.0},
                     "0.99": {"share": 0.25, "exact": 1.0}}}
    assert by_confidence(numbers[:1], ["12"], [0.3])["at_least"]["0.5"] == {"share": 0.0, "exact": None}


def test_heldout_numbers_come_from_the_digits_number_model_held_out(run, mnist_npz, tmp_path):
    card_path = tmp_path / "number.json"
    result = run("evaluate_numbers.py", NUMBER_MODEL_PATH, "--data", mnist_npz, "--count", "10", "--printed", "3",
                 "--split", "heldout",
                 "--seed", "3", "--no-tesseract", "--card", card_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "10 numbers from MNIST heldout digits" in result.stdout
    card = json.loads(card_path.read_text())
    assert card["data"]["split"] == "heldout" and card["data"]["seed"] == 3


def test_the_shipped_card_matches_the_shipped_model():
    """modelTrain/cards/number.json was measured with the models that ship beside it."""
    import hashlib

    card = json.loads(NUMBER_CARD_PATH.read_text())
    assert card["number_model"]["sha256"] == hashlib.sha256(NUMBER_MODEL_PATH.read_bytes()).hexdigest()
    assert card["data"]["split"] == "test" and card["data"]["numbers"] >= 1000
