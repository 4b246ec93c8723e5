"""Lints the CI recipes in examples/ci/: every YAML file parses and has the shape its CI expects,
and every `rehearsal …` command line in them names a subcommand and flags that the real binary
($REHEARSAL_BIN, as in conftest.py) lists in its --help."""

from __future__ import annotations

import re
import shlex
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from conftest import REHEARSAL_BIN, REPO_ROOT

CI_DIR = REPO_ROOT / "examples" / "ci"
RECIPES = sorted(CI_DIR.glob("*.yml"))
HELP_TIMEOUT_S = 30


@cache
def help_text(*subcommand: str) -> str:
    out = subprocess.run(
        [REHEARSAL_BIN, *subcommand, "--help"],
        capture_output=True,
        text=True,
        timeout=HELP_TIMEOUT_S,
        check=True,
    )
    return out.stdout


def subcommands() -> set[str]:
    text = help_text()
    section = text.split("Commands:", 1)[1].split("Options:", 1)[0]
    return {m.group(1) for m in re.finditer(r"^\s{2}([a-z][a-z0-9-]*)\s", section, re.M)}


def flags(*subcommand: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", help_text(*subcommand)))


def shell_scripts(doc, path: Path) -> list[str]:
    """The shell text of every step (GitHub) or script line (GitLab) in a recipe."""
    scripts: list[str] = []
    if path.name == "gitlab-ci.yml":
        for name, job in doc.items():
            if not isinstance(job, dict):
                continue
            for key in ("before_script", "script", "after_script"):
                stack = list(job.get(key, []))
                while stack:
                    item = stack.pop(0)
                    if isinstance(item, list):  # a YAML anchor's list, spliced in
                        stack[:0] = item
                    else:
                        scripts.append(str(item))
        return scripts
    steps = doc["runs"]["steps"] if "runs" in doc else [s for j in doc["jobs"].values() for s in j["steps"]]
    return [s["run"] for s in steps if "run" in s]


def rehearsal_commands(script: str) -> list[list[str]]:
    """Each `rehearsal …` invocation in a shell script (a simple command whose program is
    `rehearsal` or a path ending in /rehearsal), as its argument words, continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", script)
    commands = []
    for line in joined.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        segment: list[str] = []
        for w in [*words, ";"]:
            if w in {"&&", "||", ";", "|", "then", "do", "else"}:
                program = [x for x in segment if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", x)][:1]
                if program and (program[0] == "rehearsal" or program[0].endswith("/rehearsal")):
                    commands.append(segment[segment.index(program[0]) + 1 :])
                segment = []
            else:
                segment.append(w)
    return commands


def test_there_are_recipes_for_github_and_gitlab():
    names = {p.name for p in RECIPES}
    assert {"action.yml", "github-workflow.yml", "gitlab-ci.yml"} <= names, names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_each_recipe_parses_and_has_its_ci_shape(path: Path):
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), f"{path.name}: not a mapping"
    if path.name == "action.yml":
        assert doc["runs"]["using"] == "composite"
        for step in doc["runs"]["steps"]:
            if "run" in step:
                assert step.get("shell") == "bash", f"composite run steps need a shell: {step}"
        # Every ${{ inputs.X }} names a declared input.
        used = set(re.findall(r"inputs\.([a-z0-9-]+)", path.read_text()))
        assert used <= set(doc["inputs"]), used - set(doc["inputs"])
        uploads = [s for s in doc["runs"]["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
        assert uploads and uploads[0].get("if") == "always()", "reports are uploaded even when scenarios fail"
    elif path.name == "gitlab-ci.yml":
        jobs = {k: v for k, v in doc.items() if isinstance(v, dict) and "script" in v}
        assert jobs, "at least one job"
        for job in jobs.values():
            assert job["artifacts"]["when"] == "always"
            assert job["artifacts"]["reports"]["junit"]
    else:
        # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
        assert doc.get("on", doc.get(True)), "a trigger"
        for job in doc["jobs"].values():
            for step in job["steps"]:
                uses = step.get("uses", "")
                assert not uses or "@" in uses, f"unpinned action {uses}"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_rehearsal_command_uses_subcommands_and_flags_that_exist(path: Path):
    doc = yaml.safe_load(path.read_text())
    commands = [c for s in shell_scripts(doc, path) for c in rehearsal_commands(s)]
    assert any(c[:1] == ["run"] for c in commands), f"{path.name}: no `rehearsal run`"
    top_flags = flags()
    known = subcommands()
    assert {"serve", "run", "scenarios"} <= known, known
    for words in commands:
        assert words, f"{path.name}: a bare `rehearsal`"
        first = words[0]
        if first.startswith("--"):
            assert first in top_flags, f"{path.name}: rehearsal {first} is not a flag of rehearsal"
            continue
        assert first in known, f"{path.name}: rehearsal {first}: no such subcommand ({sorted(known)})"
        sub = [first]
        if first == "scenarios" and len(words) > 1 and not words[1].startswith("-"):
            sub.append(words[1])
        allowed = flags(*sub)
        for w in words[len(sub) :]:
            if w.startswith("--"):
                name = w.split("=", 1)[0]
                assert name in allowed, f"{path.name}: `rehearsal {' '.join(sub)} {name}` is not in its --help"
        # Report kinds, as in `--report junit=PATH`.
        run_help = help_text("run") if first == "run" else ""
        for i, w in enumerate(words):
            if w == "--report" and i + 1 < len(words):
                kind = words[i + 1].split("=", 1)[0]
                assert f"{kind}=" in run_help, f"{path.name}: report kind {kind} is not in `rehearsal run --help`"
        if first == "run":
            areas = re.search(r"--area <AREA>.*?\[possible values: ([^\]]+)\]", run_help, re.S)
            assert areas, "`rehearsal run --help` lists the areas"
            for i, w in enumerate(words[:-1]):
                if w == "--area":
                    assert words[i + 1] in [a.strip() for a in areas.group(1).split(",")], f"{path.name}: no area {words[i + 1]}"
            kinds = {words[i + 1].split("=", 1)[0] for i, w in enumerate(words) if w == "--report" and i + 1 < len(words)}
            assert {"junit", "html"} <= kinds, f"{path.name}: a run writes the JUnit and HTML reports: {words}"
