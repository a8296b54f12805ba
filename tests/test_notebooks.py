"""The tutorial notebooks run from top to bottom, each in a fresh Python, as committed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_real_png

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

# Runs the code cells in order in one namespace, as a kernel would; a cell whose last
# expression is a matplotlib Figure (what a notebook displays) has it saved as a PNG.
RUNNER = r"""
import ast, json, sys
from matplotlib.figure import Figure
cells = [c for c in json.load(open(sys.argv[1]))["cells"] if c["cell_type"] == "code"]
ns = {"__name__": "__main__"}
for i, cell in enumerate(cells):
    tree = ast.parse("".join(cell["source"]))
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, f"<cell {i}>", "exec"), ns)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), f"<cell {i}>", "eval"), ns)
        if isinstance(value, Figure):
            value.savefig(f"{sys.argv[2]}/cell{i:02d}.png", dpi=80)
print("ran", len(cells), "cells")
"""


def test_there_are_four_tutorials():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_draws_its_figures(path, tmp_path):
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(path), str(tmp_path)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300, env={**__import__("os").environ, "MPLBACKEND": "Agg"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = sorted(tmp_path.glob("cell*.png"))
    assert figures, "every tutorial draws at least one figure"
    for png in figures:  # saved at 80 dpi: a 3.6-inch-high panel row is 288 pixels
        assert_real_png(png, min_size=(250, 400))
