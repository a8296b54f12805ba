"""The benchmark suite: ``python -m benchmarks`` (quick) or ``python -m benchmarks --full``.

Runs each benchmark of this folder in turn, in this process, and prints its markdown
tables; each writes ``<name>_<platform>[_quick].{json,md}`` under ``--out``. Quick mode
is a smoke run (a few minutes on 2 CPU cores): the numbers are real but few. One
benchmark with its own options: ``python -m benchmarks.<name> --help``.

On a GPU lease: ``--gpu-report`` (every benchmark at its GPU sizes within about 8
minutes, each in its own process, results kept as they come; ``--rehearse`` runs the same
plan shrunk, on a CPU) and ``--gpu-tests``; see ``benchmarks/gpu_report.py``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from typing import Sequence

from benchmarks import _report as R

# the solver benchmarks last: they turn on float64 (jax_enable_x64) for the rest of the process
SUITE = ("update_throughput", "loop_overhead", "sweep_speedup", "tuning", "quasi_newton",
         "bounded", "least_squares", "implicit_diff")  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--full", action="store_true", help="the full runs (minutes each), not quick ones"
    )
    ap.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(SUITE)}")
    ap.add_argument(
        "--out", default=str(R.RESULTS), help="folder for the JSON and markdown results"
    )
    gpu = ap.add_argument_group("GPU lease (benchmarks/gpu_report.py)")
    gpu.add_argument(
        "--gpu-report", action="store_true", help="the suite at GPU sizes, within a time budget"
    )
    gpu.add_argument(
        "--rehearse", action="store_true", help="with --gpu-report: every size shrunk, for a CPU"
    )
    gpu.add_argument("--tar", default=None, help="with --gpu-report: also one archive of results")
    gpu.add_argument(
        "--deadline-s",
        type=float,
        default=None,
        help="with --gpu-report: seconds for the whole run (default 480; --rehearse 1500)",
    )
    gpu.add_argument("--gpu-tests", action="store_true", help="pytest on the GPU-relevant tests")
    args = ap.parse_args(argv)
    picked = (
        None if args.only is None else tuple(n.strip() for n in args.only.split(",") if n.strip())
    )
    if args.gpu_report or args.gpu_tests:  # the GPU plan has its own names (a tagged run too)
        args.names = picked
        return args
    args.names = SUITE if picked is None else picked
    unknown = sorted(set(args.names) - set(SUITE))
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(SUITE)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.gpu_tests or args.gpu_report:
        from benchmarks import gpu_report

        if args.gpu_tests:
            return gpu_report.gpu_tests()
        out = None if args.out == str(R.RESULTS) else args.out  # None: the plan's default
        return gpu_report.main(out, rehearse=args.rehearse, only=args.names, tar=args.tar,
                               deadline_s=args.deadline_s)  # fmt: skip
    t0 = time.perf_counter()
    for name in args.names:
        print(f"\n# benchmark: {name} ({'full' if args.full else 'quick'})\n", flush=True)
        R.publish(importlib.import_module(f"benchmarks.{name}").run(not args.full), args.out)
    print(f"\nsuite done in {time.perf_counter() - t0:.0f} s; results in {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
