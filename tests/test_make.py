"""The README's two commands in its order: ``make run`` then ``make test``, in the same folder.

``make run`` leaves ``instance/config.py`` (a SECRET_KEY) and ``instance/alignwork.sqlite``
behind. This test does the same in a copy of the project, with the Makefile's own rule and the
same ``flask`` commands, then runs the configuration tests there as ``make test`` would: they
must not see that key.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alignwork import INSTANCE_PATH_VARIABLE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["alignwork", "tests", "Makefile", "pyproject.toml", "wsgi.py", "gunicorn.conf.py",
                 "requirements.txt", "requirements-dev.txt"]
CONFIG_TESTS = [
    "tests/test_config.py",
    "tests/test_auth.py::test_production_refuses_unsafe_config",
    "tests/test_auth.py::test_development_generates_a_key_and_warns",
]


def test_make_run_then_make_test_in_the_same_folder(tmp_path):
    if shutil.which("make") is None:
        pytest.fail("make is needed to follow the README", pytrace=False)
    project = tmp_path / "alignwork-copy"
    project.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, project / name)
    # As a developer's shell has it: no private instance folder from this test session.
    env = {name: value for name, value in os.environ.items()
           if name != INSTANCE_PATH_VARIABLE and not name.startswith("PYTEST_")}
    env["FLASK_APP"] = "alignwork"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=300)

    # make run, up to serving: the key, the database, the demo tenant.
    made = run("make", "instance/config.py", f"PYTHON={sys.executable}")
    assert made.returncode == 0, made.stderr
    flask = [sys.executable, "-m", "flask"]
    assert run(*flask, "db", "upgrade").returncode == 0
    assert run(*flask, "seed", "--tenant", "demo", "--appointments", "20", "--if-empty").returncode == 0
    key_file = project / "instance" / "config.py"
    assert "SECRET_KEY = " in key_file.read_text()
    assert (project / "instance" / "alignwork.sqlite").exists()

    # make test, in the same folder.
    tested = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CONFIG_TESTS)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert " passed" in tested.stdout and "failed" not in tested.stdout
    assert "SECRET_KEY = " in key_file.read_text()  # and the developer's key is still there


def test_the_readme_says_how_to_serve_on_another_port_and_make_run_obeys():
    readme = (ROOT / "README.md").read_text()
    assert "make run PORT=" in readme and "make run HOST=" in readme
    planned = subprocess.run(["make", "-n", "run", "PORT=8123", "HOST=0.0.0.0"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    assert "-b 0.0.0.0:8123" in planned.stdout and "http://0.0.0.0:8123" in planned.stdout
