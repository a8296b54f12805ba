"""The benchmark suite at its GPU sizes, prepared for a short GPU lease.

A GPU (H100/H200) is lent at random, for about 15 minutes of device time in all and 10
minutes per command. ``python -m benchmarks --gpu-report`` runs every benchmark of
:data:`PLAN` with the options chosen for a GPU (full sizes: update_throughput up to 2^28
params with torch's CUDA Adam where torch exists, sweeps up to K = 4096 members, the
digits MLP at K = 1 against K = 64, ...), each in its own process, under a time budget:

* each benchmark's ``<name>_<platform>[_<tag>].{json,md}`` is written as soon as it
  finishes, then ``gpu_report.{json,md}`` (status, wall time and headline numbers of
  every benchmark so far, the device, driver and versions) and, with ``--tar``, one
  archive of all of them: a kill at the command's limit keeps what was done;
* a benchmark that fails (an exception, a crash, out of memory) is recorded with the end
  of its output, and the next one runs; one that outlives its cap (``SLACK`` x its
  budget, and never past ``--deadline-s`` from the start) is killed and recorded so;
* one summary table is printed at the end.

The device command (one line for the device tool's ``run``, timeout_s 600; nothing to
carry, the tracked repo is enough; the results travel as one tar because $OUT brings
back 8 files at most; ``python3 -m benchmarks`` from the repo root needs no install, so
a failed ``pip install`` does not stop the run)::

    python3 -m pip install -q --no-deps --no-build-isolation -e . || echo "pip install failed: running from the checkout"; PYTHONUNBUFFERED=1 python3 -m benchmarks --gpu-report --out /tmp/gpu_results --tar $OUT/gpu_results.tar 2>&1 | tee $OUT/gpu_report.log

then here: ``tar xf <files_at>/gpu_results.tar -C benchmarks/results``. The GPU tests
(:data:`GPU_TESTS`; 3.7 minutes on the shared 2-core CPU, not yet timed on a GPU), a
second call on the warm machine::

    python3 -m benchmarks --gpu-tests 2>&1 | tee $OUT/gpu_tests.log

``--rehearse`` shrinks every size (the same benchmarks, options and code paths, only
smaller), so that the whole plan runs on a CPU in a few minutes (4 on the shared 2-core
CPU at load ~5, 11 at load ~10): run it before a lease (``python -m benchmarks
--gpu-report --rehearse``; its files go to a temporary folder unless ``--out`` says
otherwise). ``--only NAME,...`` runs a part of the plan (a name runs all of its
entries, a key such as ``update_throughput_optimizers`` one), e.g. in a second command.

Adding a benchmark to the suite's GPU run is one :class:`Entry` in :data:`PLAN`, with
its budget (and, optionally, a headline function for the summary).
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.metadata
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from benchmarks import _report as R

SLACK = 2.0  # a benchmark is killed at SLACK x its budget: budgets are estimates
DEADLINE_S = 480.0  # the whole run: about 8 minutes, inside the 10-minute command limit
REHEARSE_DEADLINE_S = 1500.0  # a shared 2-core CPU, budgets ignored
TAIL_LINES = 30  # of a failed benchmark's output, kept in the report
Headline = Callable[[dict[str, Any]], dict[str, Any]]


# --------------------------------------------------------------------------- headlines


def _f(x: Any, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def update_throughput_headline(record: dict[str, Any]) -> dict[str, Any]:
    """Adam (float32) at the largest size, per layout: ours / optax, our share of the copy
    bandwidth, torch's Adam / optax; the worst ours / optax over every row."""
    from benchmarks.update_throughput import size_label

    rows, out = record["results"], {}
    if rows:
        big = max(r["size"] for r in rows)
        for r in rows:
            if r["optimizer"] != "adam" or r["size"] != big or r["dtype"] != "float32":
                continue
            libs = r["libraries"]
            parts = [
                f"ours/optax {_f(r['ratio_ours_over_optax']['median'])}",
                f"{_f(100 * libs['jaxopt_lab']['fraction_of_copy_bandwidth'], '.0f')}% copy BW",
            ]
            parts += [
                f"{name.removeprefix('torch Adam ')}/optax {_f(info['ratio_to_optax']['median'])}"
                for name, info in libs.items()
                if name.startswith("torch")
            ]
            out[f"adam f32 {size_label(big)} {r['leaves']} leaves"] = ", ".join(parts)
        ratios = sorted(r["ratio_ours_over_optax"]["median"] for r in rows)
        out[f"{len(rows)} rows, median ours/optax"] = _f(ratios[len(ratios) // 2])
        worst = max(rows, key=lambda r: r["ratio_ours_over_optax"]["median"])
        out["worst ours/optax"] = (
            f"{_f(worst['ratio_ours_over_optax']['median'])} ({worst['optimizer']} "
            f"{worst['dtype']} {size_label(worst['size'])} {worst['leaves']} leaves)"
        )
    torch_notes = {v for r in rows for k, v in r.get("torch", {}).items() if k == "torch"}
    if torch_notes:
        out["torch"] = ", ".join(sorted(torch_notes))
    if record.get("failed"):
        out["failed rows"] = len(record["failed"])
    return out


def sweep_headline(record: dict[str, Any]) -> dict[str, Any]:
    r, d, s = record["rosenbrock"], record["digits"], record["scaling"]
    mb, c = record["members_vs_one"], record["compile_vs_k"]
    last = list(s["variants"])[-1]
    return {
        f"rosenbrock K={r['k']} jol.sweep/hand vmap": _f(
            r["ratio_sweep_over_hand_vmap"]["median_over_median"]
        ),
        f"digits K={d['k']} jol.sweep/best hand": _f(
            d["ratio_sweep_over_best_hand_written"]["median_over_median"]
        ),
        f"digits K={mb['ks'][1]}/K=1": _f(mb["ratio_k_over_1"]["median_over_median"]),
        **{
            f"digits K={mb['ks'][1]} {name}/K=1": _f(mb[key]["median_over_median"])
            for name in ("compute_dtype", "remat")
            if isinstance(mb.get(key := f"ratio_k_{name}_over_1"), dict)
        },  # fmt: skip
        f"scaling {last} µs/member": _f(
            s["variants"][last]["ms_per_member"]["median"] * 1e3, ".1f"
        ),
        f"compile K={c['ks'][-1]}/K={c['ks'][0]}": _f(c["ratio_compile_total_high_k_over_low_k"]),
    }


def loop_headline(record: dict[str, Any]) -> dict[str, Any]:
    r = record["rosenbrock"]
    out = {
        "minimize/hand-written": _f(r["ratio_minimize_over_hand_written"]["median_over_median"]),
        "minimize vs Python loop": f"{r['speedup_minimize_over_python_loop']['median']:.0f}x",
    }
    for fr in record["digits"]:
        b = "full batch" if fr["batch_size"] == fr["n_train"] else f"B={fr['batch_size']}"
        out[f"fit/hand-written ({b})"] = _f(fr["ratio_fit_over_hand_written"]["median_over_median"])
    return out


def quasi_newton_headline(record: dict[str, Any]) -> dict[str, Any]:
    ms = record["multistart"]
    out = {
        f"multistart {m} speedup": f"{ms[m]['speedup_per_start']:.0f}x" for m in ("bfgs", "lbfgs")
    }
    for s in record["single"]:
        row = s["rows"].get("jol.bfgs", {})
        ratio = R.ratio_to_ref({"name": "jol.bfgs", **row})
        if isinstance(ratio, dict):
            out[f"n={s['n']} jol.bfgs/scipy"] = _f(ratio["median_over_median"])
    return out


def bounded_headline(record: dict[str, Any]) -> dict[str, Any]:
    ms = record["multistart"]
    out = {f"multistart lbfgsb speedup ({ms['starts']} starts)": f"{ms['speedup_per_start']:.0f}x"}
    for s in record["single"]:
        out[f"{s['problem']} time/scipy"] = _f(s["time_ratio"])
    return out


def least_squares_headline(record: dict[str, Any]) -> dict[str, Any]:
    many = record["many_fits"]
    return {
        "lm f-evals/scipy (max)": _f(record["goal"]["fev_over_scipy_max"]),
        f"{many['fits']} vmapped fits speedup": f"{many['speedup_per_fit']:.0f}x",
    }


def implicit_diff_headline(record: dict[str, Any]) -> dict[str, Any]:
    return {f"{name} time/implicit": _f(row["ratio_to_implicit"].get("median_over_median"))
            for name, row in record["rows"].items()
            if name != "implicit" and isinstance(row.get("ratio_to_implicit"), dict)}  # fmt: skip


def tuning_headline(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, sec in record["problems"].items():
        k = str(max(int(x) for x in sec["goals"]))
        grid = sec["variants"].get(f"grid K={k}", {})
        out[f"{name} grid K={k} best val"] = _f(grid.get("best_validation"))
        for gran, h in sec["goals"][k]["halving_vs_grid"].items():
            ratio = h["warm_time_over_grid"]["median_over_median"]
            out[f"{name} halving ({gran}) time/grid"] = (
                f"{_f(ratio)} goal {'met' if h['goal_met'] else 'missed'}"
            )
    if not record["config"].get("optuna"):
        out["optuna"] = "not installed: no Optuna rows"
    return out


def headline_of(entry: Entry, record: dict[str, Any]) -> dict[str, Any]:
    """The entry's headline numbers; a record they cannot be read from says why."""
    if entry.headline is None:
        return {}
    try:
        return entry.headline(record)
    except Exception as e:  # a summary must not lose the run it summarises
        return {"headline error": f"{type(e).__name__}: {e}"}


# --------------------------------------------------------------------------- the plan


@dataclasses.dataclass(frozen=True)
class Entry:
    """One benchmark run of the GPU plan: ``benchmarks.<name>.run(False, **options)``.

    ``budget_s``: the expected wall time on an H100/H200, process start-up included;
    ``rehearse``: option overrides for ``--rehearse`` (every size shrunk, nothing else
    changed); ``tag``: a file suffix, when a module runs twice with different options;
    ``headline``: the few numbers the summary shows of its record."""

    name: str
    budget_s: float
    options: dict[str, Any]
    rehearse: dict[str, Any]
    tag: str = ""
    headline: Headline | None = None

    @property
    def key(self) -> str:
        return f"{self.name}_{self.tag}" if self.tag else self.name


ALL_OPTIMIZERS_BUT_ADAM = [
    "adamw",
    "sgd(momentum=0.9)",
    "rmsprop",
    "adagrad",
    "lion",
    "adafactor",
    "muon",
    "schedule_free_adamw",
    "prodigy",
    "lookahead(adam)",
    "flatten(adam)",
]
# Budgets, in seconds on an H100/H200, a process start-up (~5-10 s) included: estimates
# (only sweep_speedup has run on a GPU: 74 s at its full defaults, 30 repeats), from the
# compiles and timed calls each plan makes (counted in the CPU rehearsal) and the H100
# step times in results/sweep_*gpu*; SLACK absorbs their error. The order is that of
# importance: what a lease must bring back comes first, the least needed last.
PLAN: tuple[Entry, ...] = (
    Entry(
        "update_throughput",
        120,
        # sizes None: 2^20, 2^24, and 2^28 where the device has the memory (default_sizes)
        {"optimizers": ["adam"], "repeats": 20, "compile_repeats": 1, "torch": True},
        # 8 leaves stand for 200: the same code, a fraction of a CPU's compile time
        {"sizes": [2**12, 2**14], "leaves": [1, 8], "repeats": 3, "min_sample_s": 0.002},
        headline=update_throughput_headline,
    ),
    Entry(
        "sweep_speedup",
        90,
        {
            "scaling_ks": [64, 256, 1024, 2048, 4096],
            "compile_ks": [1, 64, 1024, 4096],
            "members_k": 64,
            "repeats": 20,
        },
        {
            "repeats": 3,
            "python_repeats": 2,
            "mlp_repeats": 2,
            "compile_repeats": 2,
            "rosen_steps": 50,
            "rosen_k": 16,
            "mlp_steps": 10,
            "mlp_k": 4,
            "compile_steps": 20,
            "members_k": 8,
            "python_loop_budget": 0.5,
        },
        headline=sweep_headline,
    ),
    Entry(
        "loop_overhead",
        60,
        {"rosen_repeats": 15, "python_repeats": 5, "repeats": 10, "small_number": 10},
        {
            "steps": 200,
            "python_steps": 200,
            "epochs": 1,
            "full_batch_epochs": 5,
            "rosen_repeats": 3,
            "python_repeats": 2,
            "repeats": 2,
            "small_number": 2,
        },
        headline=loop_headline,
    ),
    Entry(
        "quasi_newton",
        40,
        # the GPU goal: 10,000 vmapped starts against the SciPy loop
        # (the Moré-Garbow-Hillstrom set is latency-bound: its first 8 runs, fewer samples)
        {
            "repeats": 10,
            "multistart_repeats": 3,
            "starts": 10_000,
            "mgh_runs": 8,
            "mgh_repeats": 10,
        },
        {
            "repeats": 2,
            "starts": 50,
            "scipy_starts": 5,
            "multistart_repeats": 2,
            "mgh_runs": 2,
            "mgh_repeats": 2,
        },
        headline=quasi_newton_headline,
    ),
    Entry(
        "tuning",
        50,
        {"repeats": 2},
        {"ks": [3, 9], "segments": 3, "segment_steps": 3, "batch_size": 352, "repeats": 1},
        headline=tuning_headline,
    ),
    # every other optimizer at 2^24 (bandwidth-bound): the least needed, so the last
    Entry(
        "update_throughput",
        70,
        {
            "optimizers": ALL_OPTIMIZERS_BUT_ADAM,
            "sizes": [2**24],
            "dtypes": ["float32"],
            "repeats": 10,
            "compile_repeats": 1,
            "torch": False,
        },
        {"sizes": [2**14], "leaves": [1, 8], "repeats": 2, "min_sample_s": 0.002},
        tag="optimizers",
        headline=update_throughput_headline,
    ),
    # the solvers against SciPy (on the host): on a GPU their vmapped many-start rows count
    Entry(
        "bounded",
        20,
        {"repeats": 5, "multistart_repeats": 3},
        {"repeats": 2, "starts": 20, "scipy_starts": 3, "multistart_repeats": 2},
        headline=bounded_headline,
    ),
    Entry(
        "least_squares",
        15,
        {"repeats": 10, "multi_repeats": 3},
        {"repeats": 2, "fits": 20, "scipy_fits": 3, "multi_repeats": 2},
        headline=least_squares_headline,
    ),
    Entry(
        "implicit_diff",
        15,
        {"repeats": 10},
        {"repeats": 2, "samples": 100, "features": 5},
        headline=implicit_diff_headline,
    ),
)


def plan_for(names: Sequence[str] | None, rehearse: bool) -> list[tuple[Entry, dict[str, Any]]]:
    """The entries to run (all, or those whose name or key is in ``names``) and the
    options each runs with."""
    chosen = [e for e in PLAN if names is None or e.name in names or e.key in names]
    return [(e, {**e.options, **e.rehearse} if rehearse else dict(e.options)) for e in chosen]


def plan_table(plan: Sequence[tuple[Entry, dict[str, Any]]], deadline_s: float) -> str:
    """The plan as markdown: each run, its options, budget and kill cap."""
    rows, total = [], 0.0
    for entry, options in plan:
        total += entry.budget_s
        opts = ", ".join(f"{k}={v}" for k, v in options.items())
        rows.append([entry.key, f"{entry.budget_s:.0f}", f"{SLACK * entry.budget_s:.0f}", opts])
    rows.append(["total", f"{total:.0f}", f"deadline {deadline_s:.0f}", ""])
    return R.markdown_table(["benchmark", "budget s", "cap s", "options"], rows)


# --------------------------------------------------------------------------- one benchmark


def child(name: str, options: dict[str, Any], out: str, tag: str) -> int:
    """In the benchmark's own process: run it (full mode, ``options``) and publish."""
    import importlib

    mod = importlib.import_module(name if "." in name else f"benchmarks.{name}")
    record = mod.run(False, **options)
    record["gpu_report"] = {"options": options, "tag": tag}
    R.publish(record, out, suffix=f"_{tag}" if tag else "")
    return 0


def launch(entry: Entry, options: dict[str, Any], out: Path, cap_s: float) -> dict[str, Any]:
    """Run ``entry`` in a new process, its output echoed line by line (so a log keeps
    progress), killed after ``cap_s``: its status, wall time and output's tail."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.gpu_report",
        "--child",
        entry.name,
        "--options",
        json.dumps(options),
        "--out",
        str(out),
        "--tag",
        entry.tag,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        proc.kill()  # our own child, by its handle

    timer = threading.Timer(max(cap_s, 1.0), kill)
    timer.start()
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(f"[{entry.key}] {line}")
            sys.stdout.flush()
            tail.append(line.rstrip("\n"))
        rc = proc.wait()
    finally:
        timer.cancel()
    wall = time.perf_counter() - t0
    status = "timeout" if killed.is_set() else "ok" if rc == 0 else "failed"
    result = {"status": status, "returncode": rc, "wall_s": round(wall, 1)}
    if status != "ok":
        result["error"] = _error_line(tail, status, cap_s, rc)
        result["output_tail"] = list(tail)
    return result


def _error_line(tail: Sequence[str], status: str, cap_s: float, rc: int) -> str:
    """What went wrong, in one line: the cap, the signal, or the last error printed."""
    if status == "timeout":
        return f"killed after {cap_s:.0f} s (its cap)"
    if rc < 0:  # the kernel's OOM killer, a crash in a native library, a kill by hand
        return f"killed by signal {-rc} (out of host memory? a crash?)"
    lines = [ln for ln in tail if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "Exception" in ln]
    return (errors or lines or ["no output"])[-1][:300]


# --------------------------------------------------------------------------- the report


def environment() -> dict[str, Any]:
    """Device, driver and versions, read without starting a JAX backend: this process
    must not take GPU memory from the benchmarks' processes."""
    from benchmarks import _timing as T

    versions = {}
    for package in ("jax", "jaxlib", "optax", "numpy", "scipy", "torch", "optuna"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "gpu": T.nvidia_smi(),
        "jax_plugins": T.jax_plugins(),
        **versions,
        "python": platform.python_version(),
        "cpu_model": T.cpu_model(),
        "cpu_count": os.cpu_count(),
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def result_file(out: Path, entry: Entry, since: float) -> Path | None:
    """The JSON the entry's process wrote in this run (any platform name)."""
    suffix = f"_{entry.tag}" if entry.tag else ""
    found = [p for p in out.glob(f"{entry.name}_*{suffix}.json") if p.stat().st_mtime >= since]
    found = [p for p in found if p.stem.count("_") == f"{entry.name}_x{suffix}".count("_")]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def device_line(env: dict[str, Any]) -> str:
    gpu = env.get("gpu") or {}
    plugins = ", ".join(f"{k} {v}" for k, v in (env.get("jax_plugins") or {}).items())
    device = (
        f"{gpu.get('name')}, {gpu.get('memory.total')}, driver {gpu.get('driver_version')}"
        if gpu
        else "no nvidia-smi (no NVIDIA driver seen)"
    )
    versions = ", ".join(
        f"{p} {env[p]}" for p in ("jax", "jaxlib", "optax", "torch", "optuna") if env.get(p)
    )
    return f"Device: {device}. {versions}{', ' + plugins if plugins else ''}."


def summary_md(report: dict[str, Any]) -> str:
    """The summary: one row per benchmark with its status, time and headline numbers."""
    rows = []
    for r in report["results"]:
        head = "; ".join(f"{k}: {v}" for k, v in r.get("headline", {}).items())
        if r["status"] not in ("ok", "pending"):
            head = f"{r.get('error', '')} {head}".strip()
        wall = f"{r['wall_s']:.0f}" if r.get("wall_s") is not None else ""
        rows.append([r["key"], r["status"], head.replace("|", "/"), wall, f"{r['budget_s']:.0f}"])
    headers = ["benchmark", "status", "headline (median ratios)", "wall s", "budget s"]
    table = R.markdown_table(headers, rows, n_left=3)
    mode = " (rehearsal on a CPU: sizes shrunk)" if report["rehearse"] else ""
    total = report.get("total_s")
    ended = f" Total {total:.0f} s." if total is not None else " Still running."
    return (
        f"# GPU report{mode}\n\n{device_line(report['environment'])} Started "
        f"{report['environment']['timestamp_utc']}; deadline {report['deadline_s']:.0f} s."
        f"{ended}\n\n{table}\n"
    )


def save(report: dict[str, Any], out: Path, tar: Path | None) -> None:
    """``gpu_report.{json,md}`` and, with ``tar``, every file of this run in one archive;
    each written to a temporary name and renamed, so a kill never leaves half a file."""
    _atomic(out / "gpu_report.json", json.dumps(report, indent=2, default=str) + "\n")
    _atomic(out / "gpu_report.md", summary_md(report))
    if tar is not None:
        names = ["gpu_report.json", "gpu_report.md"] + [
            r["file"] for r in report["results"] if r.get("file")
        ]
        names += [
            n.replace(".json", ".md")
            for n in names
            if n.endswith(".json") and n != "gpu_report.json"
        ]
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as archive:
            for name in sorted(set(names)):
                if (out / name).exists():
                    archive.add(out / name, arcname=name)
        tar.parent.mkdir(parents=True, exist_ok=True)
        _atomic(tar, buf.getvalue())


def _atomic(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def run_plan(
    plan: Sequence[tuple[Entry, dict[str, Any]]],
    out: Path,
    *,
    deadline_s: float,
    rehearse: bool,
    tar: Path | None = None,
    runner: Callable[..., dict[str, Any]] = launch,
) -> dict[str, Any]:
    """Run the plan in order, saving the report after every benchmark; returns it."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "rehearse": rehearse,
        "deadline_s": deadline_s,
        "slack": SLACK,
        "environment": environment(),
        "results": [
            {
                "key": e.key,
                "name": e.name,
                "tag": e.tag,
                "budget_s": e.budget_s,
                "options": o,
                "status": "pending",
            }
            for e, o in plan
        ],
    }
    save(report, out, tar)
    for (entry, options), res in zip(plan, report["results"], strict=True):
        left = deadline_s - (time.perf_counter() - t0)
        if left < 5:
            res.update(
                status="skipped", error=f"no time left before the {deadline_s:.0f} s deadline"
            )
            continue
        cap = left if rehearse else min(SLACK * entry.budget_s, left)
        print(
            f"\n# gpu-report: {entry.key} (budget {entry.budget_s:.0f} s, cap {cap:.0f} s)\n",
            flush=True,
        )
        since = time.time() - 1
        res.update(runner(entry, options, out, cap))
        path = result_file(out, entry, since)
        if path is not None:
            res["file"] = path.name
            try:  # a kill while it was being written leaves half a file
                res["headline"] = headline_of(entry, json.loads(path.read_text()))
            except ValueError as e:
                res["headline"] = {"unreadable JSON": str(e)[:200]}
        elif res["status"] == "ok":
            res.update(status="failed", error="finished without writing its JSON")
        save(report, out, tar)
    report["total_s"] = round(time.perf_counter() - t0, 1)
    save(report, out, tar)
    return report


# --------------------------------------------------------------------------- the GPU tests

# The sweep, loop, quasi-Newton and determinism tests whose programs run on the GPU. Left
# out: what runs on CPUs whatever the machine (the cross-process and 8-simulated-device
# bit checks force JAX_PLATFORMS=cpu), what kills processes at random or reads host memory,
# the statistical goal over perturbed starts and the CG methods against SciPy (BFGS and
# L-BFGS against SciPy stay). On the shared 2-core CPU (load ~7) this selection, 163 tests,
# took 3.7 minutes (2.1 of CPU time), the four modules whole 7.8. The determinism a GPU
# can break stays: bits independent of the chunk size, continuing bit for bit, a NaN
# member frozen alone.
GPU_TESTS = (
    "tests/test_sweep.py",
    "tests/test_loops.py",
    "tests/test_quasi_newton.py",
    "tests/test_reliability.py",
)
GPU_TESTS_K = (
    "not sigkill and not peak_memory and not another_process and not eight_simulated"
    " and not perturbed_starts and not (same_minimizer_as_scipy and cg)"
)


def gpu_tests(extra: Sequence[str] = ()) -> int:
    """pytest on :data:`GPU_TESTS` (``-k`` :data:`GPU_TESTS_K`), durations listed."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *GPU_TESTS,
        "-k",
        GPU_TESTS_K,
        "--durations=15",
        "-p",
        "no:cacheprovider",
        *extra,
    ]
    print("$ " + shlex.join(cmd), flush=True)
    return subprocess.call(cmd, cwd=Path(__file__).resolve().parents[1])


# --------------------------------------------------------------------------- command line


def main(
    out: str | None,
    *,
    rehearse: bool = False,
    only: Sequence[str] | None = None,
    tar: str | None = None,
    deadline_s: float | None = None,
) -> int:
    """``python -m benchmarks --gpu-report [--rehearse] [--out DIR] [--tar FILE]``."""
    deadline = deadline_s or (REHEARSE_DEADLINE_S if rehearse else DEADLINE_S)
    if out is None:  # a rehearsal's numbers are no results: never in benchmarks/results
        import tempfile

        out = tempfile.mkdtemp(prefix="gpu_rehearsal_") if rehearse else str(R.RESULTS)
    plan = plan_for(only, rehearse)
    unknown = sorted(set(only or ()) - {e.name for e in PLAN} - {e.key for e in PLAN})
    if unknown or not plan:
        print(f"gpu-report: nothing to run for {unknown or only}", file=sys.stderr)
        return 2
    print(plan_table(plan, deadline), flush=True)
    report = run_plan(
        plan,
        Path(out),
        deadline_s=deadline,
        rehearse=rehearse,
        tar=Path(tar) if tar else None,
    )
    print("\n" + summary_md(report), flush=True)
    return 0 if all(r["status"] == "ok" for r in report["results"]) else 1


def child_main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_report")
    ap.add_argument("--child", required=True, help="the benchmark module to run")
    ap.add_argument("--options", default="{}", help="its options, as JSON")
    ap.add_argument("--out", required=True)
    ap.add_argument("--tag", default="")
    args = ap.parse_args(argv)
    return child(args.child, json.loads(args.options), args.out, args.tag)


if __name__ == "__main__":
    sys.exit(child_main())
