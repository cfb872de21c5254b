"""The README and docs/ stay true to the repository: every relative link leads to a file (and
its #anchor to a heading), every ``flask …`` command they name exists, the code map names only
files that exist, and instance/config.example.py sets only documented settings the app accepts.
"""

from __future__ import annotations

import os
import re
import runpy
import shlex
from pathlib import Path
from urllib.parse import unquote

import click
import pytest
from flask.cli import FlaskGroup, ScriptInfo

from alignwork import create_app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```+|~~~+)\s*(\S*)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
# `flask` as a command word: at the start, after a space, a slash (.venv/bin/flask) or `$ `.
FLASK_WORD = re.compile(r"(?:^|(?<=[\s/(]))flask(?=\s)")
# Commands a text may name without their subcommand.
PLACEHOLDERS = {"…", "...", "<command>"}


def _split(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str, str]]]:
    """(prose lines, code lines with their fence's language), each with its line number."""
    prose, code = [], []
    fence, language = None, ""
    for number, line in enumerate(text.splitlines(), 1):
        opening = FENCE.match(line.strip())
        if fence is None and opening:
            fence, language = opening.group(1), opening.group(2)
        elif fence is not None and line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            fence = None
        elif fence is not None:
            code.append((number, line, language))
        else:
            prose.append((number, line))
    return prose, code


def _without_code_spans(line: str) -> str:
    return INLINE_CODE.sub("", line)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading.strip())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text only
    text = text.lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    prose, _ = _split(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    anchors = set()
    for _, line in prose:
        match = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = _slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links(path: Path) -> list[tuple[int, str]]:
    prose, _ = _split(path.read_text(encoding="utf-8"))
    found = []
    for number, line in prose:
        bare = _without_code_spans(line)
        found += [(number, target) for target in INLINE_LINK.findall(bare)]
        reference = REFERENCE_LINK.match(bare)
        if reference:
            found.append((number, reference.group(1)))
    return found


def _is_relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) and not target.startswith("//")


def broken_links(paths, root: Path = ROOT) -> list[str]:
    problems = []
    for path in paths:
        for number, target in _links(path):
            if not _is_relative(target):
                continue
            file_part, _, anchor = target.partition("#")
            destination = (path.parent / unquote(file_part)).resolve() if file_part else path
            where = f"{path.relative_to(root)}:{number}: {target}"
            if not destination.exists():
                problems.append(f"{where}: no such file")
            elif root not in destination.parents and destination != root:
                problems.append(f"{where}: outside the repository")
            elif anchor and destination.suffix == ".md" and anchor not in _anchors(destination):
                problems.append(f"{where}: no heading with that anchor")
    return problems


def _code_texts(path: Path) -> list[tuple[int, str]]:
    """Text in code spans and in shell-like code blocks (not ``text``, ``ini``, ``nginx``, …)."""
    prose, code = _split(path.read_text(encoding="utf-8"))
    texts = [(number, span) for number, line in prose for _, span in INLINE_CODE.findall(line)]
    texts += [(number, line) for number, line, language in code
              if language in ("", "sh", "shell", "bash", "console")]
    return sorted(texts, key=lambda text: text[0])


def _command_words(text: str) -> list[list[str]]:
    """Each ``flask …`` in the text: the words after it, up to the first that ends a command."""
    named = []
    for match in FLASK_WORD.finditer(text):
        rest = text[match.end():].split("#", 1)[0]
        try:
            words = shlex.split(rest, comments=False)
        except ValueError:
            words = rest.split()
        while words and words[0].startswith("-"):  # flask --app alignwork …
            option = words.pop(0)
            if option in ("--app", "-A", "--env-file", "-e") and words:
                words.pop(0)
        commands: list[list[str]] = [[]]
        for word in words:
            word = word.strip("'\",;:)")
            if not word or word.startswith(("-", "<", "[", "|", "&", "$")) or word in PLACEHOLDERS:
                break
            # `flask cache keys|show|clear` names three commands.
            commands = [command + [alternative] for command in commands for alternative in word.split("|")]
        named += [command for command in commands if command]
    return named


def named_commands(paths, root: Path = ROOT) -> list[tuple[str, list[str]]]:
    return [(f"{path.relative_to(root)}:{number}", command)
            for path in paths for number, text in _code_texts(path) for command in _command_words(text)]


@pytest.fixture
def flask_cli(tmp_path_factory):
    """The ``flask`` command line as a user gets it: Flask's own commands (run, shell, routes),
    the plugins' (Flask-Migrate's db, flask-smorest's openapi) and the app's groups."""
    folder = tmp_path_factory.mktemp("docs-cli")
    app = create_app({"TESTING": True, "SECRET_KEY": "docs-links-" + "x" * 32,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/docs.sqlite",
                      "CACHE_TYPE": "SimpleCache"}, instance_path=str(folder / "instance"))
    group = FlaskGroup(create_app=lambda: app)
    # Closed after each test: looking a command up pushes the app's context onto it (as
    # ``flask`` does), and a context left pushed would stand in for later tests' missing one.
    with click.Context(group, obj=ScriptInfo(create_app=lambda: app)) as context:
        yield group, context


def missing_commands(commands, cli) -> list[str]:
    group, context = cli
    problems = []
    for where, words in commands:
        current: click.Command = group
        for depth, word in enumerate(words):
            if not isinstance(current, click.Group):
                break  # the rest are the command's arguments
            found = current.get_command(context, word)
            if found is None:
                problems.append(f"{where}: flask {' '.join(words[:depth + 1])}: no such command")
                break
            current = found
    return problems


def test_every_relative_link_resolves():
    assert broken_links(DOCS) == []


def test_every_flask_command_named_exists(flask_cli):
    commands = named_commands(DOCS)
    named = {" ".join(words[:2]) for _, words in commands}
    # The ones a reader needs first are among those checked.
    assert {"db upgrade", "tenants create", "tenants token", "stats new-epoch", "cache stats"} <= named
    assert missing_commands(commands, flask_cli) == []


def test_the_checks_catch_a_broken_link_a_wrong_anchor_and_a_missing_command(tmp_path, flask_cli):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("# Title\n\nSee [the api](nowhere.md), [a heading](#no-such-heading), "
                    "[this](#title), [up](../docs/page.md#title) and [out](../../x.md).\n\n"
                    "```sh\nflask tenants rename-all demo\nflask db upgrade\n```\n"
                    "Run `flask cache nothing|keys` or `.venv/bin/flask --app alignwork shell`.\n")
    assert [problem.split(": ", 1)[1] for problem in broken_links([page], root=tmp_path)] == [
        "nowhere.md: no such file", "#no-such-heading: no heading with that anchor",
        "../../x.md: no such file"]
    commands = named_commands([page], root=tmp_path)
    assert [words for _, words in commands] == [
        ["tenants", "rename-all", "demo"], ["db", "upgrade"], ["cache", "nothing"], ["cache", "keys"], ["shell"]]
    assert [problem.split(": ", 1)[1] for problem in missing_commands(commands, flask_cli)] == [
        "flask tenants rename-all: no such command", "flask cache nothing: no such command"]


def test_github_anchors():
    assert _slug("Retrying a POST: `Idempotency-Key`") == "retrying-a-post-idempotency-key"
    assert _slug("Midnight: tomorrow's entries before it is tomorrow") == \
        "midnight-tomorrows-entries-before-it-is-tomorrow"
    assert _slug("The cache: one Redis, Sentinel, Cluster") == "the-cache-one-redis-sentinel-cluster"


def test_the_code_map_names_only_files_that_exist():
    """docs/architecture.md's map: each line's first word, nested by indentation (two spaces)."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("## A map of the code", 1)[1].split("```", 2)[1]
    stack: list[tuple[int, str]] = []
    named = []
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+)", line)
        if not match or len(match.group(2)) < 2 or not re.search(r"[./]", match.group(2)):
            continue  # a description's continuation line
        indent, name = len(match.group(1)), match.group(2)
        if stack and indent > stack[-1][0] + 2:
            continue  # a continuation line that happens to start with a path-like word
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "".join(folder for _, folder in stack) + name
        named.append(path)
        if name.endswith("/"):
            stack.append((indent, name))
    assert "alignwork/services/stats/query.py" in named and "alignwork/services/changes/listener.py" in named
    assert [path for path in named if not (ROOT / path).exists()] == []


def _documented_settings() -> set[str]:
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    table = deploy.split("### Every setting", 1)[1].split("\n\n", 2)[1]
    return {name for row in table.splitlines() if row.startswith("| `")
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def test_the_example_config_sets_only_documented_settings_the_app_accepts(tmp_path, monkeypatch):
    example = ROOT / "instance" / "config.example.py"
    documented = _documented_settings()
    assert {"SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "CACHE_TYPE", "CACHE_REDIS_URL"} <= documented
    settings = {name: value for name, value in runpy.run_path(str(example)).items() if name.isupper()}
    assert settings and set(settings) <= documented
    shown = set(re.findall(r"^#\s*([A-Z][A-Z0-9_]+)\s*=", example.read_text(), re.MULTILINE))
    assert shown - documented == set()  # the commented-out ones too
    # As an instance/config.py: built and checked by the factory, nothing refused, nothing
    # overridden by this shell's environment.
    for name in list(os.environ):
        if name == "DATABASE_URL" or name.startswith("ALIGNWORK_"):
            monkeypatch.delenv(name)
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.py").write_text(example.read_text())
    app = create_app({"TESTING": True}, instance_path=str(instance))
    assert app.config["CACHE_TYPE"].endswith("RedisCache")
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
