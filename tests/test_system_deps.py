"""Every program the code and the tests run is installed by the Makefile's `system-deps`, so that
`make test` passes on a bare Debian machine: the programs are found by reading the source, not listed."""
import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

SOURCES = [path for folder in ("flaskService", "modelTrain", "benchmarks", "tests")
           for path in sorted((ROOT / folder).rglob("*.py"))]
RUNNERS = {"run", "Popen", "call", "check_call", "check_output", "which"}
# Debian installs these on every system (Essential or Priority: required): never missing.
BASE_PRIORITIES = {"required"}
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The interpreter itself: the README's one prerequisite (engine.py names /usr/bin/python3 inside an image).
PREREQUISITES = {"/usr/bin/python3"}


def makefile_variable(name):
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    return re.search(rf"^{name}\s*:=(.*)$", text, re.M).group(1).split()


def _first_word(node, names):
    """The program a command names: a string, the first string of a list, or a name bound to one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
        return _first_word(node.elts[0], names)
    if isinstance(node, ast.Name) and node.id in names:
        return _first_word(names[node.id], names)
    if isinstance(node, ast.BoolOp):  # shutil.which("podman") or "/usr/bin/podman"
        return _first_word(node.values[-1], names)
    if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "which" and node.args:
        return _first_word(node.args[0], names)
    return None  # built at run time (the virtualenv's own tools, sys.executable): not a system program


def programs_called(path):
    """Programs a module runs through subprocess or looks up with shutil.which, and the absolute
    paths of programs it names (/usr/bin/chromium)."""
    tree = ast.parse(path.read_text())
    names = {target.id: node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
             for target in node.targets if isinstance(target, ast.Name)}
    found = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and getattr(node.func.value, "id", None) in ("subprocess", "shutil") and node.func.attr in RUNNERS
                and node.args):
            word = _first_word(node.args[0], names)
            if word:
                found.add(word)
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and re.fullmatch(r"/usr/(s?bin|lib/podman)/[\w.+-]+", node.value)):
            found.add(node.value)
    return found


def all_programs():
    return sorted({program for path in SOURCES for program in programs_called(path)} - PREREQUISITES)


def package_of(program):
    """The Debian package that owns the program's file, and that package's priority."""
    path = program if program.startswith("/") else shutil.which(program, path=SEARCH_PATH)
    assert path and Path(path).exists(), f"{program} is not installed: add its package to system-deps"
    # dpkg may know the file by its symlink's target or, on a merged /usr, as /bin/x.
    for candidate in (str(Path(path).resolve()), path, re.sub(r"^/usr/", "/", path)):
        owners = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if owners.returncode == 0:
            break
    assert owners.returncode == 0, f"{program} ({path}) belongs to no Debian package: {owners.stderr}"
    package = owners.stdout.split(":")[0].split(",")[0].strip()
    priority = subprocess.run(["dpkg-query", "-W", "-f", "${Priority}", package], capture_output=True,
                              text=True).stdout.strip()
    return package, priority


def test_the_source_is_read_for_the_programs_it_runs():
    """The scan finds the programs we know are used, so an empty scan cannot pass the test below."""
    programs = all_programs()
    for known in ("tesseract", "envsubst", "/usr/bin/chromium", "mount", "wrk"):
        assert known in programs, programs


@pytest.mark.parametrize("program", all_programs())
def test_system_deps_installs_every_program_called(program):
    package, priority = package_of(program)
    if priority in BASE_PRIORITIES:
        return
    assert package in makefile_variable("SYSTEM_PACKAGES"), \
        f"{program} comes from Debian's {package}, which the Makefile's system-deps does not install"
    installed = program if program.startswith("/") else shutil.which(program, path=SEARCH_PATH)
    assert installed in makefile_variable("SYSTEM_FILES") or any(
        subprocess.run(["dpkg", "-S", f], capture_output=True, text=True).stdout.startswith(f"{package}:")
        for f in makefile_variable("SYSTEM_FILES") if Path(f).exists()), \
        f"system-deps checks no file of {package}, so it would skip installing it on a machine that has the rest"
