"""The docs say what the code and the cards say: card figures are the generator's, links resolve,
the configuration table and the tree name everything there is, and the README stays short."""
import copy
import hashlib
import importlib.util
import re

import pytest

from flaskService.config import SETTINGS
from tests.helpers import MODEL_PATH, NUMBER_MODEL_PATH, ROOT

_spec = importlib.util.spec_from_file_location("figures", ROOT / "docs" / "figures.py")
figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figures)

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"^```.*?^```|`[^`\n]*`", re.M | re.S)
HEADING = re.compile(r"^#+ (.+)$", re.M)
HISTORY = ("previous model", "candidates rejected", "what changed since", "was rejected")


def prose(path):
    """The file without its code blocks and inline code, where brackets are not links."""
    return CODE.sub("", path.read_text())


def anchor(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def relative_links(path):
    return [target for target in LINK.findall(prose(path)) if not re.match(r"[a-z]+:", target)]


def test_the_figures_are_the_cards():
    """Every marked block is what docs/figures.py writes from flaskService/model.json and modelTrain/cards/number.json."""
    cards = figures.load_cards()
    stale = [str(path.relative_to(ROOT)) for path in figures.docs()
             if figures.render(path.read_text(), cards) != path.read_text()]
    assert not stale, f"figures differ from the cards in {stale}: run `python docs/figures.py`"


def test_every_block_is_shown_somewhere():
    """A block the generator can write but no doc shows would be figures nobody reads."""
    shown = set(re.findall(r"<!-- figures:([\w-]+) -->", "".join(path.read_text() for path in figures.docs())))
    assert shown == set(figures.BLOCKS)


@pytest.mark.parametrize("readers", [("sequence", "segmenting", "tesseract"), ("sequence", "tesseract"), ("reader",)])
def test_the_numbers_table_shows_whichever_readers_the_card_holds(readers):
    """number.json's readers change (a sequence reader, the segmenting one, Tesseract); the table
    and the headline follow the card: one column per entry with an exact_match."""
    cards = figures.load_cards()
    measured = next(result for _, result in figures.number_readers(cards["number"]))
    card = {key: value for key, value in cards["number"].items() if not isinstance(value, dict) or "exact_match" not in value}
    card.update({name: copy.deepcopy(measured) for name in readers})
    card["readers"] = {name: f"how {name} reads" for name in readers}
    cards["number"] = card
    header = figures.numbers_table(cards).splitlines()[0]
    assert [cell.strip().split()[0] for cell in header.split("|")[2:-1] if cell.strip() != "target"] == \
        [f"`{name}`" for name in readers]
    assert all(f"(`{name}`)" in figures.headline_accuracy(cards) for name in readers)
    assert all(f"how {name} reads" in figures.number_card(cards) for name in readers)


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    """Links and pictures point at files that exist, and anchors at headings that exist."""
    broken = []
    for target in relative_links(path):
        file, _, fragment = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(target)
        elif fragment and linked.suffix == ".md" and fragment not in {anchor(h) for h in HEADING.findall(prose(linked))}:
            broken.append(target)
    assert not broken


def test_the_readme_links_to_every_doc():
    """Every page under docs/ is reachable from the README."""
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in relative_links(ROOT / "README.md")}
    assert set((ROOT / "docs").glob("*.md")) <= linked


def test_the_readme_fits_a_few_screens():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_the_configuration_table_lists_every_setting():
    """flaskService/config.py's SETTINGS is the README's configuration table: each has a row."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("### Configuration"):].split("\n## ")[0]
    rows = {name for line in table.splitlines() if line.startswith("| `")
            for name in re.findall(r"`([A-Z_]+)`", line.split("|")[1])}
    assert set(SETTINGS) <= rows, f"no row for {sorted(set(SETTINGS) - rows)}"


def test_the_tree_names_every_module():
    """docs/architecture.md's tree names every module of the service, training and benchmarks."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    modules = [path for folder in ("flaskService", "modelTrain", "benchmarks")
               for path in (ROOT / folder).glob("*.py") if path.name != "__init__.py"]
    assert [str(path.relative_to(ROOT)) for path in modules if path.name not in text] == []


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_docs_describe_what_is(path):
    """History lives in git: no previous-model columns or rejected candidates in the docs."""
    text = path.read_text().lower()
    assert [phrase for phrase in HISTORY if phrase in text] == []


ANSWERED_MODEL = re.compile(r'"model": \{"name": "([^"]+)", "version": "([^"]+)"\}')


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_example_answers_name_the_shipped_models(path):
    """An example answer names the model that gives it, at the version the service ships."""
    shipped = {"mnist": MODEL_PATH, "number_model": NUMBER_MODEL_PATH}
    versions = {name: hashlib.sha256(model.read_bytes()).hexdigest()[:12] for name, model in shipped.items()}
    named = ANSWERED_MODEL.findall(path.read_text())
    assert [(name, version) for name, version in named if versions.get(name) != version] == []
