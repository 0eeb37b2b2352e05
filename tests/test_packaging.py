"""The files a user touches first agree with each other.

- environment.yml (conda-forge names) lists exactly pyproject's dependencies and extras, with the
  same version bounds;
- the README starts with the two commands, and .ci/run runs the second one verbatim;
- the notebooks .ci/run executes exist, and no notebook is committed with outputs;
- the console script points at a real function.
"""

from __future__ import annotations

import importlib
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
ENV = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
CI_RUN = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")

#: PyPI name -> conda-forge name(s). The first carries the version bound; the others must be
#: listed too (``dask[distributed]`` is two conda packages, ``mkdocstrings[python]`` too).
CONDA_NAMES: dict[str, tuple[str, ...]] = {
    "dask": ("dask", "distributed"),
    "quickjs": ("python-quickjs",),
    "matplotlib": ("matplotlib-base",),
    "mkdocstrings": ("mkdocstrings", "mkdocstrings-python"),
}
#: Entries of environment.yml that are not dependencies of the package.
ENV_ONLY = {"python", "pip"}

_CONDA_SPEC = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(.*)$")


def _env_python() -> str:
    for dep in ENV["dependencies"]:
        if isinstance(dep, str) and dep.startswith("python="):
            return dep.split("=", 1)[1]
    raise AssertionError("environment.yml pins no python version")


def _pyproject_requirements() -> dict[str, Requirement]:
    """Core dependencies plus every extra, self-references expanded, for the env's Python."""
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    env = {"python_version": _env_python(), "extra": ""}
    reqs: dict[str, Requirement] = {}
    pending = [*project["dependencies"], *(r for rs in extras.values() for r in rs)]
    while pending:
        req = Requirement(pending.pop())
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        if req.name == project["name"]:
            for extra in req.extras:
                pending.extend(extras[extra])
            continue
        name = req.name.lower()
        if name in reqs:
            assert reqs[name].specifier == req.specifier, f"two bounds for {name} in pyproject"
        reqs[name] = req
    return reqs


def _environment_entries() -> tuple[dict[str, SpecifierSet], dict[str, SpecifierSet]]:
    conda: dict[str, SpecifierSet] = {}
    pip: dict[str, SpecifierSet] = {}
    for dep in ENV["dependencies"]:
        if isinstance(dep, dict):
            for line in dep.get("pip", []):
                req = Requirement(line)
                pip[req.name.lower()] = req.specifier
            continue
        name, spec = _CONDA_SPEC.match(dep).groups()
        spec = spec.replace(" ", "")
        if re.match(r"^=[^=]", spec):  # a conda pin such as python=3.11: not a pip specifier
            spec = "==" + spec[1:] + ".*"
        conda[name.lower()] = SpecifierSet(spec)
    return conda, pip


def test_environment_channels_and_python():
    assert ENV["channels"][0] == "conda-forge"
    requires = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert requires.contains(_env_python() + ".0"), "environment.yml python outside requires-python"


def test_environment_yml_matches_pyproject():
    reqs = _pyproject_requirements()
    conda, pip = _environment_entries()
    accounted = set(ENV_ONLY)
    problems = []
    for name, req in sorted(reqs.items()):
        if name in pip:
            if pip[name] != req.specifier:
                problems.append(f"{name}: pip section has {pip[name]}, pyproject {req.specifier}")
            accounted.add(name)
            continue
        names = CONDA_NAMES.get(name, (name,))
        primary, *companions = names
        if primary not in conda:
            problems.append(f"{name}: missing from environment.yml (as {primary})")
        elif conda[primary] != req.specifier:
            problems.append(
                f"{name}: environment.yml has {conda[primary]}, pyproject {req.specifier}"
            )
        problems += [f"{name}: companion {c} missing" for c in companions if c not in conda]
        accounted.update(names)
    extra = sorted(set(conda) - accounted) + sorted(set(pip) - accounted)
    problems += [f"{e}: in environment.yml but not a pyproject dependency" for e in extra]
    assert not problems, "\n".join(problems)


def test_environment_mapping_is_used():
    """A stale CONDA_NAMES entry would hide a rename: every key is a real dependency."""
    reqs = _pyproject_requirements()
    assert set(CONDA_NAMES) <= set(reqs)


# -- README and .ci/run -------------------------------------------------------------------------
def _readme_blocks() -> list[str]:
    module = runpy.run_path(str(ROOT / ".ci" / "readme_command.py"))
    return module["readme_blocks"](ROOT / "README.md")


def test_readme_starts_with_the_two_commands():
    blocks = _readme_blocks()
    assert len(blocks) >= 2
    demo, tests = blocks[0], blocks[1]
    # nothing but a title and one-line captions before the two blocks
    head = README.split("```", 4)
    assert len(head[0].strip().splitlines()) <= 3 and len(head[2].strip().splitlines()) <= 2
    assert "\n" not in demo and "\n" not in tests, "each command is one copy-paste line"
    assert demo.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -e ")
    assert '".[demo]"' in demo and demo.endswith("&& xasync demo")
    assert tests.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -e ")
    assert '".[test]"' in tests and tests.endswith("&& pytest")


def test_readme_extras_exist():
    extras = PYPROJECT["project"]["optional-dependencies"]
    for block in _readme_blocks()[:2]:
        for extra in re.findall(r'"\.\[([a-z,]+)\]"', block):
            assert set(extra.split(",")) <= set(extras), extra


def test_ci_runs_the_readme_test_command_verbatim():
    out = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "readme_command.py"), "1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == _readme_blocks()[1]
    # .ci/run takes its command from that script and runs it as a whole
    assert "readme_command.py 1" in CI_RUN
    assert 'bash -euo pipefail -c "$cmd"' in CI_RUN
    # the venv the README creates is the one CI activates afterwards
    assert ". .venv/bin/activate" in out and ". .venv/bin/activate" in CI_RUN
    assert "set -euo pipefail" in CI_RUN
    assert "mkdocs build --strict" in CI_RUN


def test_ci_notebooks_exist_and_cover_the_emulator_ones():
    listed = set(re.findall(r"notebooks/[\w.-]+\.ipynb", CI_RUN))
    on_disk = {f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert listed, ".ci/run executes no notebook"
    assert listed <= on_disk, f"missing notebooks: {listed - on_disk}"
    # every notebook runs in CI except the real-service template, which needs an account
    assert on_disk - listed == {"notebooks/03-real-service.ipynb"}


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{path.name}: a cell has outputs"
            assert cell.get("execution_count") is None, f"{path.name}: execution counts"


def test_console_script_points_at_a_function():
    target = PYPROJECT["project"]["scripts"]["xasync"]
    module, func = target.split(":")
    assert callable(getattr(importlib.import_module(module), func))


def test_mkdocs_nav_lists_every_page():
    import yaml as _yaml

    class _Loader(_yaml.SafeLoader):
        pass

    # mkdocs.yml may hold !!python/name tags; ignore unknown tags
    _Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    cfg = _yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_Loader)

    def walk(items):
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            if isinstance(value, list):
                yield from walk(value)
            else:
                yield value

    nav = set(walk(cfg["nav"]))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages == nav, f"not in nav: {pages - nav}; missing files: {nav - pages}"


def test_ci_requires_the_spec_type_checks_and_runs_the_newest_stack():
    assert "XASYNC_REQUIRE_SPEC=1" in CI_RUN
    assert re.search(r"^\s*mypy\b", CI_RUN, re.M) and "[tool.mypy]" in CI_RUN
    assert PYPROJECT["tool"]["mypy"]["files"] == ["xasync"]
    assert "tests/unit tests/integration" in CI_RUN and "3.12" in CI_RUN
    assert "SKIPPED newest-stack step" in CI_RUN  # says so when no 3.12 exists


def test_declared_python_versions_agree():
    project = PYPROJECT["project"]
    declared = {
        c.rsplit(" :: ", 1)[-1]
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert declared == {"3.11", "3.12"}  # the two .ci/run tests
    requires = SpecifierSet(project["requires-python"])
    assert all(requires.contains(f"{v}.0") for v in declared)
    assert not requires.contains("3.10.0")
    assert not any("<1.5" in d for d in project["dependencies"] if d.startswith("rasterio"))
