"""Sphinx extension of the jaxopt_lab site.

- Before the sources are read, it writes the pages that are generated, never typed:
  one page per benchmark record (``benchmarks/results/*.json``, rendered by the
  benchmarks' own report code, so the tables are the ones the benchmark printed) and a
  copy of each tutorial notebook (Sphinx reads sources only below ``docs/``). The
  notebooks' figures show because ``jaxopt_lab.plots.Figure`` has a ``_repr_png_``.
- It resolves references to a name's defining module (``jaxopt_lab.transforms.trace``,
  as docstrings write them) to the public name the API reference documents
  (``jaxopt_lab.trace``).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
RESULTS = ROOT / "benchmarks" / "results"
BENCH_PAGES = DOCS / "benchmarks" / "generated"
TUTORIALS = DOCS / "tutorials"


def _write_if_changed(path: Path, text: str) -> None:
    # Rewriting an unchanged page would make Sphinx rebuild it on every incremental build.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _variant(record: dict, json_path: Path) -> str:
    """What a record's file name adds to ``<benchmark>_<platform>`` (``flatten``, ...)."""
    base = f"{record['benchmark']}_{record['environment'].get('platform')}"
    return json_path.stem[len(base) + 1 :].replace("_", " ") if json_path.stem != base else ""


def benchmark_page(json_path: Path) -> str:
    """The markdown page of one benchmark record, as its benchmark renders it."""
    from benchmarks import _report

    record = json.loads(json_path.read_text())
    source = json_path.relative_to(ROOT).as_posix()
    markdown = _report.render(record)
    title, _, body = markdown.partition("\n")
    variant = _variant(record, json_path)
    if variant and title.endswith(")"):  # several records of one benchmark: tell them apart
        title = f"{title[:-1]}, {variant})"
    note = (
        f"Generated when this site was built, from `{source}` (rerun with "
        f"`python -m benchmarks.{record['benchmark']}`)."
    )
    return f"{title}\n\n{note}\n{body}"


def overview_row(json_path: Path) -> list[str]:
    """One line of the records table: which benchmark, where and when it ran."""
    record = json.loads(json_path.read_text())
    env = record["environment"]
    title = importlib.import_module(f"benchmarks.{record['benchmark']}").TITLE
    device = env.get("device_kind") if env.get("platform") != "cpu" else env.get("cpu_model")
    variant = _variant(record, json_path)
    return [
        f"[{title}{f' ({variant})' if variant else ''}](generated/{json_path.stem}.md)",
        f"{env.get('platform')}: {device}, {env.get('cpu_count')} CPU cores",
        f"jax {env.get('jax')}",
        str(env.get("timestamp_utc", "")).replace("T", " ").rstrip("Z"),
    ]


def overview(json_paths: list[Path]) -> str:
    """The table of every record, included by ``docs/benchmarks/index.md`` (so its links
    are relative to that page)."""
    rows = [overview_row(p) for p in json_paths]
    head = ["record (full tables)", "device", "versions", "run at (UTC)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def generate_benchmark_pages() -> list[str]:
    BENCH_PAGES.mkdir(exist_ok=True)
    names = []
    for json_path in sorted(RESULTS.glob("*.json")):
        if json_path.stem.endswith("_quick"):  # smoke runs are not results
            continue
        _write_if_changed(BENCH_PAGES / f"{json_path.stem}.md", benchmark_page(json_path))
        names.append(json_path.stem)
    paths = [RESULTS / f"{name}.json" for name in names]
    _write_if_changed(BENCH_PAGES / "overview.mdinc", overview(paths))
    for stale in BENCH_PAGES.glob("*.md"):
        if stale.stem not in names:
            stale.unlink()
    return names


def copy_notebooks() -> None:
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(notebook.read_text())
        for i, cell in enumerate(nb["cells"]):  # nbformat 4.5 wants cell ids; ours have none
            cell.setdefault("id", f"cell-{i}")
        nb["nbformat_minor"] = max(nb.get("nbformat_minor", 0), 5)
        _write_if_changed(TUTORIALS / notebook.name, json.dumps(nb, indent=1) + "\n")


def _generate(app) -> None:
    generate_benchmark_pages()
    copy_notebooks()


def _public_name(app, env, node, contnode):
    """``jaxopt_lab.<module>.name`` -> ``jaxopt_lab.name`` when only the latter is documented."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("jaxopt_lab."):
        return None
    parts = target.split(".")
    domain = env.get_domain("py")
    for candidate in (f"jaxopt_lab.{parts[-1]}", f"jaxopt_lab.contrib.{parts[-1]}"):
        if candidate != target and candidate in domain.objects:
            node["reftarget"] = candidate
            return domain.resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], candidate, node, contnode
            )
    return None


def _skip_namedtuple_fields(app, what, name, obj, skip, options):
    # A NamedTuple's fields are described in its ``Attributes:`` section already.
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
    app.connect("builder-inited", _generate)
    app.connect("missing-reference", _public_name)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
