"""Small, reusable timing helpers for the jaxopt_lab benchmarks.

The rules every benchmark here follows:

* compile time is measured apart from run time, by timing
  ``jax.jit(f, ...).lower(*args)`` and ``.compile()`` on a *fresh* function object
  (so neither jit's trace cache nor XLA's executable cache can answer);
* run time is measured on the compiled executable, after warm-up calls, with
  ``jax.block_until_ready`` on the outputs, over several repeats, and reported as
  min / median / max;
* benchmarks that should be compared are run *interleaved* (A B, B A, A B, ...), so
  that slow drift of a noisy machine (frequency, neighbours, page cache) biases
  neither side;
* buffers a step overwrites are donated, so a step is ``carry = f(carry, *consts)``:
  the output carry is fed back as the next input and the donated input is never
  touched again.

Nothing here assumes a platform: JAX places the arrays on its default device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib.metadata
import math
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

# --------------------------------------------------------------------------- stats


@dataclasses.dataclass(frozen=True)
class Stats:
    """min / median / max (and mean, stdev) of a list of samples, in seconds."""

    min: float
    median: float
    max: float
    mean: float
    stdev: float
    n: int
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float]) -> "Stats":
        s = [float(x) for x in samples]
        if not s:
            raise ValueError("Stats.of: no samples")
        return cls(
            min=min(s),
            median=statistics.median(s),
            max=max(s),
            mean=statistics.fmean(s),
            stdev=statistics.stdev(s) if len(s) > 1 else 0.0,
            n=len(s),
            samples=tuple(s),
        )

    def scaled(self, factor: float) -> dict[str, float]:
        """min/median/max multiplied by ``factor`` (e.g. 1e3 for milliseconds)."""
        return {"min": self.min * factor, "median": self.median * factor, "max": self.max * factor}

    def to_dict(self, include_samples: bool = True) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["samples"] = list(self.samples)
        if not include_samples:
            d.pop("samples")
        return d


def rate_stats(work: float, time_stats: Stats) -> dict[str, float]:
    """``work / time`` for the min / median / max time (note: min time -> max rate)."""
    return {
        "min": work / time_stats.max,
        "median": work / time_stats.median,
        "max": work / time_stats.min,
    }


# --------------------------------------------------------------------------- compile


@dataclasses.dataclass
class CompileResult:
    compiled: Any  # jax.stages.Compiled of the last repeat
    lowered: Any  # jax.stages.Lowered of the last repeat
    lower: Stats  # trace + lower to StableHLO, seconds
    compile: Stats  # XLA compile, seconds
    total: Stats  # lower + compile, seconds


def compile_timed(
    make_fn: Callable[[], Callable],
    args: Sequence[Any],
    *,
    repeats: int = 1,
    **jit_kwargs: Any,
) -> CompileResult:
    """Time ``jax.jit(make_fn(), **jit_kwargs).lower(*args).compile()``.

    ``make_fn`` must return a *new* function object on every call, so that each repeat
    traces, lowers and compiles from scratch (jit caches traces by function identity,
    and XLA executables are cached by lowered-module identity). ``args`` are only used
    for their shapes/dtypes/shardings; donation does not consume them at lowering time.
    """
    lower_t, compile_t, total_t = [], [], []
    compiled = lowered = None
    for _ in range(max(1, repeats)):
        fn = make_fn()
        t0 = time.perf_counter()
        lowered = jax.jit(fn, **jit_kwargs).lower(*args)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        lower_t.append(t1 - t0)
        compile_t.append(t2 - t1)
        total_t.append(t2 - t0)
    return CompileResult(
        compiled=compiled,
        lowered=lowered,
        lower=Stats.of(lower_t),
        compile=Stats.of(compile_t),
        total=Stats.of(total_t),
    )


def warm_up_backend() -> float:
    """Compile and run one trivial program, so that backend start-up cost is not
    charged to the first benchmark's compile time. Returns the seconds it took."""
    t0 = time.perf_counter()
    x = jax.numpy.ones((8,), jax.numpy.float32)
    jax.block_until_ready(jax.jit(lambda v: v * 2 + 1)(x))
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- run


class StatefulBench:
    """A compiled step ``carry -> carry`` (donated carry) plus constant extra args.

    ``sample(number)`` runs the step ``number`` times back to back (each call's output
    carry is the next call's input), blocks on the final carry, and returns the elapsed
    seconds divided by ``number``.
    """

    def __init__(
        self,
        name: str,
        step: Callable,
        carry: Any,
        consts: Sequence[Any] = (),
        carry_is_tuple: bool = True,
    ):
        self.name = name
        self.step = step
        self.carry = carry
        self.consts = tuple(consts)
        self.carry_is_tuple = carry_is_tuple
        self.samples: list[float] = []

    def _call(self):
        if self.carry_is_tuple:
            self.carry = self.step(*self.carry, *self.consts)
        else:
            self.carry = self.step(self.carry, *self.consts)

    def _block(self) -> None:
        jax.block_until_ready(self.carry)

    def run(self, n: int = 1) -> None:
        for _ in range(n):
            self._call()
        self._block()

    def sample(self, number: int = 1) -> float:
        t0 = time.perf_counter()
        for _ in range(number):
            self._call()
        self._block()
        return (time.perf_counter() - t0) / number

    def stats(self) -> Stats:
        return Stats.of(self.samples)


def calibrate_number(benches: Sequence[StatefulBench], min_sample_s: float) -> int:
    """Calls per sample so that the *fastest* bench's sample lasts >= ``min_sample_s``
    (one common number for all benches, so they are timed the same way). On a slow
    device this is 1; on a fast one it amortises Python dispatch and timer resolution."""
    fastest = min(min(b.sample(1) for _ in range(3)) for b in benches)
    if fastest <= 0:
        return 1
    return max(1, math.ceil(min_sample_s / fastest))


def run_interleaved(
    benches: Sequence[StatefulBench],
    *,
    repeats: int,
    warmup: int = 3,
    number: int | None = None,
    min_sample_s: float = 0.02,
    disable_gc: bool = True,
) -> int:
    """Warm each bench up, then take ``repeats`` samples of each, interleaved.

    Round ``r`` visits the benches in order when ``r`` is even and in reverse order
    when it is odd (A B / B A / A B ...), so that neither goes systematically first.
    Samples are appended to ``bench.samples``. Returns the calls-per-sample used.
    """
    for b in benches:
        b.run(warmup)
    if number is None:
        number = calibrate_number(benches, min_sample_s)
    gc_was_enabled = gc.isenabled()
    if disable_gc:
        gc.collect()
        gc.disable()
    try:
        for r in range(repeats):
            order = benches if r % 2 == 0 else list(reversed(benches))
            for b in order:
                b.samples.append(b.sample(number))
    finally:
        if disable_gc and gc_was_enabled:
            gc.enable()
    return number


# --------------------------------------------------------------------------- environment


def blas_threads(n: int = 1) -> Any:
    """A context holding the BLAS that NumPy/SciPy call to ``n`` threads (0: as it is).
    SciPy's solvers make a few tiny BLAS calls per iteration; with two OpenBLAS threads on
    a loaded machine each waits for a core (a 2-D L-BFGS-B solve: 200 ms against 1.2 ms
    with one thread), which says nothing about the method. JAX's CPU backend does not
    use OpenBLAS. Without threadpoolctl, set OPENBLAS_NUM_THREADS=1 before running."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(n, user_api="blas") if n else contextlib.nullcontext()


def cpu_model() -> str | None:
    """CPU model name from /proc/cpuinfo (Linux) or platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def load_average() -> list[float] | None:
    """1/5/15-minute load averages where the OS reports them: other work on the
    machine while a benchmark runs is the usual reason for noisy numbers."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def nvidia_smi() -> dict[str, str] | None:
    """Driver version, name and memory of the first GPU from ``nvidia-smi``; None where it
    is missing or fails (a CPU machine, a container without it): a GPU number means
    little without the driver it ran under."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    fields = ("driver_version", "name", "memory.total")
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    values = [v.strip() for v in first.split(",")]
    return dict(zip(fields, values, strict=False)) if len(values) == len(fields) else None


def jax_plugins() -> dict[str, str]:
    """Versions of the installed JAX backend plugins (e.g. jax-cuda12-plugin): the CUDA
    build JAX ran with. Empty on a CPU-only install."""
    out = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith("jax-cuda") or name.startswith("jax-rocm"):
            out[name] = dist.version
    return dict(sorted(out.items()))


def device_memory_bytes(dev: Any) -> int | None:
    """Memory JAX may use on ``dev`` (its allocator's limit), where the backend says."""
    try:
        return (dev.memory_stats() or {}).get("bytes_limit")
    except Exception:  # not every backend reports its memory
        return None


def environment() -> dict[str, Any]:
    """Versions and device description to store next to every result."""
    import jaxlib

    dev = jax.devices()[0]
    env: dict[str, Any] = {
        "platform": dev.platform,
        "default_backend": jax.default_backend(),
        "device_kind": dev.device_kind,
        "device": str(dev),
        "device_count": jax.device_count(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "xla_flags": os.environ.get("XLA_FLAGS"),
        "device_memory_bytes": device_memory_bytes(dev),
        "jax_plugins": jax_plugins(),
        "gpu_driver": nvidia_smi() if dev.platform == "gpu" else None,
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_1_5_15min": load_average(),
    }
    for package in ("optax", "scipy", "torch"):  # read from the metadata: nothing imported
        try:
            env[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            env[package] = None
    return env


# --------------------------------------------------------------------------- whole calls


class CallBench:
    """A whole call ``fn(*args)`` timed end to end (Python dispatch + run), blocking on
    its outputs after *every* call, so that one sample is the latency a user sees for one
    call (e.g. a complete training run). Same interface as :class:`StatefulBench`
    (``run``, ``sample``, ``samples``, ``stats``), so it works with :func:`run_interleaved`.

    ``last`` keeps the outputs of the latest call (for correctness checks).
    """

    def __init__(self, name: str, fn: Callable, args: Sequence[Any] = (), **info: Any):
        self.name = name
        self.fn = fn
        self.args = tuple(args)
        self.info = dict(info)
        self.samples: list[float] = []
        self.last: Any = None

    def run(self, n: int = 1) -> None:
        for _ in range(n):
            self.last = jax.block_until_ready(self.fn(*self.args))

    def sample(self, number: int = 1) -> float:
        t0 = time.perf_counter()
        for _ in range(number):
            self.last = jax.block_until_ready(self.fn(*self.args))
        return (time.perf_counter() - t0) / number

    def stats(self) -> Stats:
        return Stats.of(self.samples)


def paired_ratio(samples_a: Sequence[float], samples_b: Sequence[float]) -> dict[str, float]:
    """Ratios of samples taken in the same interleaved round (``a[i] / b[i]``): they cancel
    drift slower than one round; their quartiles are a noise gauge. Also the ratio of the
    medians and of the minima."""
    a, b = np.asarray(samples_a, float), np.asarray(samples_b, float)
    n = min(a.size, b.size)
    r = a[:n] / b[:n]
    return {
        "median_over_median": float(np.median(a) / np.median(b)),
        "min_over_min": float(a.min() / b.min()),
        "paired_median": float(np.median(r)),
        "paired_q25": float(np.percentile(r, 25)),
        "paired_q75": float(np.percentile(r, 75)),
        "paired_min": float(r.min()),
        "paired_max": float(r.max()),
    }


# --------------------------------------------------------------------------- compile events

_COMPILE_EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace_s",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
    "/jax/core/compile/backend_compile_duration": "xla_compile_s",
}
_active_recorders: list["CompileEvents"] = []
_listener_installed = False


def _on_duration_event(event: str, duration: float, **_: Any) -> None:
    key = _COMPILE_EVENTS.get(event)
    if key is not None:
        for rec in _active_recorders:
            rec.totals[key] += duration
            if key == "xla_compile_s":
                rec.compiles += 1


class CompileEvents:
    """Context manager that sums JAX's own compile-time events (``jax.monitoring``) while
    it is active: seconds spent tracing to jaxprs, lowering to StableHLO and in the XLA
    backend compiler, and the number of XLA compiles. This measures the compile cost of
    *any* call (including a library's internal ``jax.jit``) without private APIs, and a
    count of 0 proves a cache hit (e.g. no recompile for a new learning rate).

    ``wall_s`` is the wall time of the whole block (compile + run of a first call)."""

    def __init__(self) -> None:
        self.totals = {k: 0.0 for k in _COMPILE_EVENTS.values()}
        self.compiles = 0
        self.wall_s = float("nan")

    def __enter__(self) -> "CompileEvents":
        global _listener_installed
        if not _listener_installed:
            jax.monitoring.register_event_duration_secs_listener(_on_duration_event)
            _listener_installed = True
        _active_recorders.append(self)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall_s = time.perf_counter() - self._t0
        _active_recorders.remove(self)

    def to_dict(self) -> dict[str, Any]:
        return {"wall_s": self.wall_s, "xla_compiles": self.compiles, **self.totals}


# --------------------------------------------------------------------------- HLO


def hlo_op_counts(compiled_or_text: Any) -> dict[str, int]:
    """Histogram of HLO opcodes over the whole optimised module (all computations,
    including fused ones and while-loop bodies). Diffing two histograms shows extra work
    one program does (a gather, a convert, a copy, a bigger loop carry, ...)."""
    import re

    text = compiled_or_text if isinstance(compiled_or_text, str) else compiled_or_text.as_text()
    counts: dict[str, int] = {}
    pat = re.compile(r"=\s*[^=]*?\s([a-z][a-z0-9\-]*)\(")
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith(("HloModule", "ENTRY", "}", "//")) or " = " not in s:
            continue
        m = pat.search(s)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return dict(sorted(counts.items()))


def hlo_op_diff(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """``a - b`` per opcode, only the opcodes whose counts differ."""
    keys = sorted(set(a) | set(b))
    return {k: a.get(k, 0) - b.get(k, 0) for k in keys if a.get(k, 0) != b.get(k, 0)}


# --------------------------------------------------------------------------- variants


@dataclasses.dataclass
class Variant:
    """One variant of a benchmark, declared as data. Its setup is done where the variant
    is built (a jitted function, an optimizer, device arrays), so that the timed calls
    reuse the same objects and nothing is traced or compiled again.

    * ``call()``: the whole call that is timed (a complete run), blocked on its outputs;
    * ``first``: the call whose compile cost is measured (default ``call``);
    * ``again``: a second call, e.g. with another learning rate, whose compiles are counted;
    * ``work``: steps or members one call runs (for per-step / per-member figures);
    * ``ref``: the variant its time is compared with (paired ratio);
    * ``check``: the variant whose output it must agree with, ``out`` says what of the
      output (default: final params, ``.params`` or the first entry of a tuple);
    * ``info``: fields copied into its row.
    """

    name: str
    call: Callable[[], Any]
    first: Callable[[], Any] | None = None
    again: Callable[[], Any] | None = None
    work: int = 1
    ref: str | None = None
    check: str | None = None
    out: Callable[[Any], Any] | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def first_call(fn: Callable[[], Any]) -> dict[str, Any]:
    """Compile cost of ``fn()``, a variant's very first call (trace + lower + XLA compile
    + one run), from JAX's compile events; ``xla_compiles`` counts the programs compiled."""
    with CompileEvents() as ev:
        jax.block_until_ready(fn())
    return ev.to_dict()


def measure(
    variants: Sequence[Variant],
    *,
    repeats: int,
    warmup: int,
    number: int = 1,
    ref: str | None = None,
    compile: bool = True,
    again_key: str | None = None,
    per_call: tuple[str, float] = ("ms_per_run", 1e3),
    per_work: tuple[str, str, float] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Time ``variants`` as whole calls: each one's first call (compile cost, unless
    ``compile=False``), then ``repeats`` interleaved samples of ``number`` warm calls
    after ``warmup`` untimed ones (:func:`run_interleaved` with :class:`CallBench`).

    Returns (rows, outputs): a row per variant with ``time_s`` (all samples), the time per
    call scaled as ``per_call`` = (key, factor), with ``per_work`` = (work key, key, factor)
    the work and the time per unit of work, ``ratio_to_<ref>`` (paired, against the
    variant's ``ref`` or else ``ref``) and ``compile`` (the first call's events; with
    ``again_key``, ``{"first_call": ..., again_key: ...}``); and each variant's last output.
    """
    comp: dict[str, Any] = {}
    for v in variants if compile else ():
        comp[v.name] = first_call(v.first or v.call)
        if again_key is not None:
            second = {again_key: first_call(v.again)} if v.again is not None else {}
            comp[v.name] = {"first_call": comp[v.name], **second}
    benches = [CallBench(v.name, v.call) for v in variants]
    run_interleaved(benches, repeats=repeats, warmup=warmup, number=number)
    by = {b.name: b for b in benches}
    rows: dict[str, dict[str, Any]] = {}
    for v, b in zip(variants, benches, strict=True):
        st, row = b.stats(), {}
        if per_work is not None:
            row[per_work[0]] = v.work
        row["time_s"] = st.to_dict()
        row[per_call[0]] = st.scaled(per_call[1])
        if per_work is not None:
            row[per_work[1]] = st.scaled(per_work[2] / v.work)
        r = v.ref or ref
        if r is not None:
            row["ratio_to_" + r] = paired_ratio(b.samples, by[r].samples)
        if v.name in comp:
            row["compile"] = comp[v.name]
        rows[v.name] = {**row, **v.info}
    return rows, {b.name: b.last for b in benches}


def final_params(out: Any) -> Any:
    """Final params of a run's output: ``.params`` (a result object) or its first entry."""
    return out.params if hasattr(out, "params") else out[0]


def max_abs_diff(a: Any, b: Any) -> float:
    """Largest ``|a - b|`` over all leaves, in float64; NaN entries (masked history) ignored."""
    return max(
        float(np.nanmax(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def agreement(
    variants: Sequence[Variant], outputs: dict[str, Any], suffix: str = ""
) -> dict[str, float]:
    """``"<variant> vs <its check><suffix>"``: max abs difference of what ``out`` takes
    from both outputs, for every variant that names a ``check``."""
    by = {v.name: v for v in variants}
    return {
        f"{v.name} vs {v.check}{suffix}": max_abs_diff(
            *((by[n].out or final_params)(outputs[n]) for n in (v.name, v.check))
        )
        for v in variants
        if v.check is not None
    }
