"""The image (dockerFlaskService/Dockerfile), read: lint-clean, portable to older builders, and
consistent with compose and Kubernetes. tests/dockerFlaskService/containers builds it and runs it
for real."""
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import ROOT

DOCKERFILE = ROOT / "dockerFlaskService" / "Dockerfile"
DEPLOYMENT = ROOT / "dockerFlaskService" / "k8s" / "deployment.yaml"


def instructions(path=DOCKERFILE):
    """The final stage's (instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    pairs = [tuple(line.strip().split(None, 1)) for line in text.splitlines() if line.strip()]
    last_from = max(i for i, (name, _) in enumerate(pairs) if name == "FROM")
    return [(name.upper(), args) for name, args in pairs[last_from:]]


def exec_form(args):
    """A JSON-array (exec form) command; the shell form is not accepted."""
    command = json.loads(args)
    assert isinstance(command, list) and all(isinstance(word, str) for word in command), args
    return command


def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_a_fixed_non_root_uid_from_the_repository_root():
    """The settings compose and the Deployment depend on: UID 10001, port 5000, WORKDIR /app with
    flaskService/ in it (the CMD names flaskService/gunicorn.conf.py relative to it)."""
    final_list = instructions()
    final = dict(final_list)
    assert final["USER"].split(":")[0] in ("10001", "${UID}")
    assert re.search(r"ARG UID=10001", DOCKERFILE.read_text())
    assert final["EXPOSE"] == "5000"
    assert final["WORKDIR"] == "/app"
    copies = [args.split() for name, args in final_list if name == "COPY"]
    assert ["flaskService/", "flaskService/"] in copies
    # The conversion made in the build stage, beside model.h5, and TensorFlow left behind there.
    assert ["--from=convert", "/app/flaskService/*.tflite", "flaskService/"] in copies
    assert ["--from=serving-venv", "/opt/venv", "/opt/venv"] in copies
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


def test_dockerignore_lets_in_only_what_the_image_copies():
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line and not line.startswith("#")]
    assert patterns[0] == "*"
    assert {p for p in patterns if p.startswith("!")} == {"!requirements.txt", "!requirements-train.txt", "!flaskService/"}


def test_builds_with_docker_23_and_buildah_4_3():
    """No instruction option newer than those builders: HEALTHCHECK's --start-interval needs Docker
    Engine 25 and Buildah rejects it ("flag provided but not defined")."""
    final = dict(instructions())
    options, check = final["HEALTHCHECK"].split(" CMD ", 1)
    assert set(re.findall(r"--([a-z-]+)=", options)) <= {"interval", "timeout", "start-period", "retries"}
    assert exec_form(check)[0] == "python"
    assert exec_form(final["CMD"]) == ["gunicorn", "-c", "flaskService/gunicorn.conf.py"]


def test_final_stage_installs_only_the_serving_requirements():
    """TensorFlow is installed only in the stage that converts the model; requirements.txt, which
    the final stage's virtualenv is built from, names neither TensorFlow nor Keras."""
    serving = (ROOT / "requirements.txt").read_text().lower()
    assert not re.search(r"^(tensorflow|tf-|keras)", serving, re.MULTILINE)
    stages = re.split(r"^FROM ", DOCKERFILE.read_text(), flags=re.MULTILINE)[1:]
    names = [stage.split("\n", 1)[0] for stage in stages]
    assert [n.split(" AS ")[-1] for n in names[:-1]] == ["serving-venv", "convert"]
    assert "requirements-train.txt" in stages[1] and "requirements-train.txt" not in stages[0] + stages[2]


def test_image_ships_no_plot_and_no_evaluation_card():
    """What the image copies from flaskService/ is what serving reads: no plot (.png; the docs show
    them from docs/images/) and no evaluation card (modelTrain/cards/); a JSON file in it is the card
    of the model file beside it (GET /model serves model.json)."""
    copied = [args.split()[0] for name, args in instructions() if name == "COPY" and not args.startswith("--from")]
    assert copied == ["flaskService/"]
    files = [path for path in (ROOT / "flaskService").rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    evaluation_cards = {path.name for path in (ROOT / "modelTrain" / "cards").glob("*.json")}
    assert evaluation_cards
    assert [path.name for path in files if path.suffix == ".png" or path.name in evaluation_cards] == []
    assert [path.name for path in files if path.suffix == ".json" and not path.with_suffix(".h5").is_file()] == []
