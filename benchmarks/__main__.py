"""The benchmark suite: ``python -m benchmarks`` (quick) or ``python -m benchmarks --full``.

Runs each benchmark of this folder in turn, in this process, and prints its markdown
tables; each writes ``<name>_<platform>[_quick].{json,md}`` under ``--out``. Quick mode
is a smoke run (a few minutes on 2 CPU cores): the numbers are real but few. One
benchmark with its own options: ``python -m benchmarks.<name> --help``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from typing import Sequence

from benchmarks import _report as R

# quasi_newton last: it turns on float64 (jax_enable_x64) for the rest of the process
SUITE = ("update_throughput", "loop_overhead", "sweep_speedup", "tuning", "quasi_newton")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--full", action="store_true", help="the full runs (minutes each), not quick ones"
    )
    ap.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(SUITE)}")
    ap.add_argument(
        "--out", default=str(R.RESULTS), help="folder for the JSON and markdown results"
    )
    args = ap.parse_args(argv)
    args.names = (
        SUITE if args.only is None else tuple(n.strip() for n in args.only.split(",") if n.strip())
    )
    unknown = sorted(set(args.names) - set(SUITE))
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(SUITE)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    for name in args.names:
        print(f"\n# benchmark: {name} ({'full' if args.full else 'quick'})\n", flush=True)
        R.publish(importlib.import_module(f"benchmarks.{name}").run(not args.full), args.out)
    print(f"\nsuite done in {time.perf_counter() - t0:.0f} s; results in {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
