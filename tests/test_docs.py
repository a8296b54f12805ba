"""The documentation site (``docs/``) and the examples in the docstrings.

- Every public name has an entry in the API reference (``docs/api/*.rst``), and every
  entry there names something public.
- The docstrings' ``>>>`` examples run and print what they show (doctests).
- With the ``docs`` extra installed, the site builds with warnings as errors, the
  notebooks rendered without being executed (they have their own test,
  ``test_notebooks.py``), and no page of it links to a file or an anchor that does not
  exist. Without Sphinx those tests are skipped.
"""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import jaxopt_lab as jol

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# --------------------------------------------------------------------------------------
# The API reference lists every public name
# --------------------------------------------------------------------------------------

DIRECTIVE = re.compile(r"^\.\. (?:auto(?!module)\w+|py:\w+):: ([\w.]+)", re.M)
CURRENT = re.compile(r"^\.\. (?:py:)?currentmodule:: ([\w.]+)", re.M)
# The namespaces with a page of their own, and what they make public.
NAMESPACES = {
    "jaxopt_lab": set(jol.__all__) - {"problems"},  # `problems` is a module: its own page
    "jaxopt_lab.contrib": set(jol.contrib.__all__),
    "jaxopt_lab.problems": set(importlib.import_module("jaxopt_lab.problems").__all__),
    "jaxopt_lab.plots": set(importlib.import_module("jaxopt_lab.plots").__all__),
    "jaxopt_lab.implicit": set(importlib.import_module("jaxopt_lab.implicit").__all__),
}


def documented_names() -> dict[str, set[str]]:
    """``{module: names}`` of the entries written in ``docs/api/*.rst``."""
    found: dict[str, set[str]] = {}
    for page in sorted((DOCS / "api").glob("*.rst")):
        text = page.read_text()
        module = None
        # Walk directives in order: `currentmodule` sets the module of the entries after it.
        for match in re.finditer(f"{CURRENT.pattern}|{DIRECTIVE.pattern}", text, re.M):
            if match.group(1):
                module = match.group(1)
            elif module is not None:
                found.setdefault(module, set()).add(match.group(2))
    return found


def test_every_public_name_has_an_api_entry():
    found = documented_names()
    for module, public in NAMESPACES.items():
        missing = public - found.get(module, set())
        assert not missing, f"public names of {module} missing from docs/api/*.rst: {missing}"


def test_every_api_entry_is_public():
    for module, names in documented_names().items():
        stale = names - NAMESPACES.get(module, set())
        assert not stale, f"docs/api/*.rst documents {module} names that are not public: {stale}"


# --------------------------------------------------------------------------------------
# Doctests
# --------------------------------------------------------------------------------------

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(jol.__path__, "jaxopt_lab.") if m.name != "jaxopt_lab.cli"
) + ["jaxopt_lab", "jaxopt_lab.cli"]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module_name)
    return [t for t in tests if t.examples]


def test_the_main_names_have_doctests():
    """The examples cover at least the names a newcomer meets first."""
    covered = {t.name.rsplit(".", 1)[-1] for m in MODULES for t in _examples(m)}
    first = {"adam", "sgd", "chain", "apply_updates", "sweep", "lr_find", "check_grad",
             "inject_hyperparams", "scale_by_adam", "cosine_decay_schedule", "muon"}  # fmt: skip
    assert first <= covered, f"no doctest for {first - covered}"


WITH_EXAMPLES = [m for m in MODULES if _examples(m)]


@pytest.mark.parametrize("module_name", WITH_EXAMPLES)
def test_docstring_examples_run(module_name):
    tests = _examples(module_name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []  # doctest swaps sys.stdout while it runs: collect, then show
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


# --------------------------------------------------------------------------------------
# The site builds, and its links resolve
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    pytest.importorskip("sphinx", reason="the docs extra is not installed")
    pytest.importorskip("myst_nb", reason="the docs extra is not installed")
    out = tmp_path_factory.mktemp("docs") / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           "-D", "nb_execution_mode=off", str(DOCS), str(out)]  # fmt: skip
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stderr[-6000:]}"
    return out


def test_site_builds_with_warnings_as_errors(built_site):
    for page in ["index.html", "api/optimizers.html", "tutorials/index.html",
                 "benchmarks/index.html", "guide/getting_started.html"]:  # fmt: skip
        assert (built_site / page).is_file(), page
    api = (built_site / "api" / "optimizers.html").read_text()
    assert 'id="jaxopt_lab.adam"' in api


class _Links(HTMLParser):
    """Collects a page's ids and the targets of its links and images."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and attrs.get("rel") == "canonical"):
                self.targets.append(attrs[key])


def broken_links(site: Path) -> list[str]:
    """Links between the site's own files whose file or anchor does not exist."""
    pages: dict[Path, _Links] = {}
    for html in site.rglob("*.html"):
        parser = _Links()
        parser.feed(html.read_text(encoding="utf-8"))
        pages[html.resolve()] = parser
    broken = []
    for html, parser in pages.items():
        for target in parser.targets:
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or target.startswith("data:"):
                continue  # another site: not ours to check offline
            path = (html.parent / unquote(parts.path)).resolve() if parts.path else html
            if path.is_dir():
                path = path / "index.html"
            if not path.exists():
                broken.append(f"{html.relative_to(site)}: {target} (no such file)")
            elif not path.is_relative_to(site.resolve()):
                broken.append(f"{html.relative_to(site)}: {target} (outside the site)")
            elif parts.fragment and path.suffix == ".html":
                if unquote(parts.fragment) not in pages[path].ids:
                    broken.append(f"{html.relative_to(site)}: {target} (no such anchor)")
    return broken


def test_no_page_links_to_a_missing_file_or_anchor(built_site):
    assert broken_links(built_site) == []
