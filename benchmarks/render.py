"""Re-render benchmark records: ``python -m benchmarks.render FILE.json [...] [--write]``.

Prints the markdown of each record (as the benchmark wrote it after its run); with
``--write``, writes it next to the JSON (same name, ``.md``) instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from benchmarks import _report as R


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.render", description=__doc__)
    ap.add_argument("files", nargs="+", type=Path, help="records written by a benchmark")
    ap.add_argument("--write", action="store_true", help="write FILE.md instead of printing")
    args = ap.parse_args(argv)
    for path in args.files:
        md = R.render(json.loads(path.read_text()))
        if args.write:
            path.with_suffix(".md").write_text(md)
        else:
            sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
