"""Sphinx configuration of the jaxopt_lab site.

Build it from the repository root (``docs`` extra installed)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The tutorial notebooks are executed during the build (they are committed without
outputs); ``-D nb_execution_mode=off`` skips that, as ``tests/test_docs.py`` does.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS / "_ext"), str(DOCS.parent)]  # our extension; ``benchmarks``

project = "jaxopt_lab"
author = "the jaxopt_lab authors"
copyright = "the jaxopt_lab authors, Apache-2.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # the few docstrings with Google-style ``Args:`` sections
    "sphinx.ext.mathjax",
    "myst_nb",  # markdown pages, and the notebooks executed at build time
    "jol_docs",  # generated pages (benchmarks, tutorials) and re-export references
]

exclude_patterns = ["_build", "README.md", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# API reference: entries are written out in docs/api/*.rst, family by family.
autosummary_generate = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"  # types only where the docstring has Args
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True  # show `1e-8`, not a float's repr after evaluation
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # an ``Attributes:`` section is a field list, not a second entry

# Markdown and notebooks.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3  # `[text](page.md#a-heading)` links resolve
nb_execution_mode = "force"  # every figure comes from the code above it, run now
nb_execution_timeout = 600
nb_execution_raise_on_error = True  # a failing cell fails the build
nb_execution_show_tb = True
nb_merge_streams = True

html_theme = "furo"
html_title = "jaxopt_lab"
html_static_path: list[str] = []
