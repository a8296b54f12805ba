"""What every benchmark shares around its measurements: options, the record, the report.

A benchmark module declares

* ``TITLE``: the heading of its report;
* ``PARAMS``: its options as data, ``name: (quick default, full default, help[, low])``
  (``low``: the smallest int allowed, default 1, or a tuple of the strings allowed; floats
  must be > 0); each is a command-line flag ``--name`` and a keyword of ``run``;
* ``run(quick, **options) -> record``: measures and returns the record, a JSON-able dict
  (``benchmark``, ``environment``: device and versions, ``config``, the measured rows),
  timing its variants (:class:`benchmarks._timing.Variant`) with ``_timing.measure``;
* ``report(record) -> blocks``: what to show of a record, as paragraphs (``str``) and
  :class:`Table` s.

:func:`render` is the one renderer: it turns any record (also one read back from its
JSON, see ``python -m benchmarks.render``) into markdown. :func:`publish` writes the JSON
and the markdown, :func:`cli` is every module's command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable, Sequence

from benchmarks import _timing as T

RESULTS = Path(__file__).resolve().parent / "results"
WHOLE_CALLS = {  # the method of _timing.measure, noted in a record's config
    "order": "interleaved: variant order reversed every round",
    "timing": "whole call (dispatch + run), block_until_ready on every output",
    "compile": "first call of each variant, jax.monitoring compile events",
}
Log = Callable[[str], None]

# --------------------------------------------------------------------------- options


def _kind(spec: tuple) -> Any:
    """The type of an option: that of its defaults (``[type]`` for a list)."""
    value = spec[0] if spec[0] is not None else spec[1]
    if isinstance(value, list):
        return [type(value[0])]
    return str if value is None else type(value)


def _out_of_range(value: Any, low: Any) -> bool:
    if isinstance(value, str):
        return isinstance(low, (tuple, list)) and value not in low
    if isinstance(value, float):
        return not value > 0
    return isinstance(value, int) and not isinstance(value, bool) and value < low


def settings(
    params: dict[str, tuple], quick: bool, options: dict[str, Any]
) -> types.SimpleNamespace:
    """The options of a run: ``options`` over the quick or full defaults of ``params``;
    raises ``ValueError`` naming the option for an unknown name or a value out of range
    (``low``: the smallest int, or for strings the choices)."""
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; choose from {sorted(params)}")
    cfg: dict[str, Any] = {"quick": bool(quick)}
    for name, spec in params.items():
        value = options.get(name)
        cfg[name] = value = (spec[0] if quick else spec[1]) if value is None else value
        low = spec[3] if len(spec) > 3 else 1
        bad = [v for v in (value if isinstance(value, list) else [value]) if _out_of_range(v, low)]
        if bad or value == []:
            want = f"choose from {list(low)}" if isinstance(low, tuple) else f"need >= {low} (> 0)"
            raise ValueError(f"--{name.replace('_', '-')}: {bad or value}: {want}")
    return types.SimpleNamespace(**cfg)


def cli(module: str, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m benchmarks.<module> [--quick] [--<option> VALUE ...] [--out DIR]``."""
    mod = importlib.import_module(module)
    ap = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=mod.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="smoke test; writes *_quick.{json,md}")
    ap.add_argument("--out", default=str(RESULTS), help="output folder (default %(default)s)")
    for name, spec in mod.PARAMS.items():
        flag, kind = "--" + name.replace("_", "-"), _kind(spec)
        show = [",".join(map(str, v)) if isinstance(v, list) else v for v in spec[:2]]
        helptext = f"{spec[2]} (default {show[1]}" + (
            f"; {show[0]} with --quick)" if show[0] != show[1] else ")"
        )
        if kind is bool:
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, help=helptext)
        elif isinstance(kind, list):
            item = kind[0]
            ap.add_argument(
                flag,
                help=helptext + "; comma-separated",
                type=lambda s, item=item: [item(x) for x in s.split(",") if x.strip()],
            )
        else:
            ap.add_argument(flag, type=kind, help=helptext)
    args = ap.parse_args(argv)
    options = {k: getattr(args, k) for k in mod.PARAMS if getattr(args, k) is not None}
    try:
        settings(mod.PARAMS, args.quick, options)
    except ValueError as e:
        ap.error(str(e))
    return publish(mod.run(args.quick, **options), args.out)


# --------------------------------------------------------------------------- the record


def stage_logger(t_start: float) -> Log:
    """``log(msg)``: ``msg`` on stderr, prefixed by the seconds since ``t_start``."""

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return log


def begin(name: str, cfg: types.SimpleNamespace, **notes: Any) -> tuple[dict[str, Any], Log]:
    """A new record (device and versions, the options and ``notes`` on the method as its
    config, the backend's start-up time) and a logger; the clock starts now."""
    t_start = time.perf_counter()
    record = {
        "benchmark": name,
        "environment": T.environment(),
        "config": {**vars(cfg), **notes},
        "backend_warmup_s": T.warm_up_backend(),
        "_t_start": t_start,
    }
    return record, stage_logger(t_start)


def finish(record: dict[str, Any]) -> dict[str, Any]:
    """Close a record: load average at the end and total runtime since :func:`begin`."""
    record["load_average_at_end"] = T.load_average()
    record["total_runtime_s"] = time.perf_counter() - record.pop("_t_start")
    return record


def publish(
    record: dict[str, Any], out_dir: str | Path = RESULTS, suffix: str = ""
) -> dict[str, Any]:
    """Write ``<benchmark>_<platform>[<suffix>][_quick].json`` and ``.md`` under
    ``out_dir``, print the markdown, and return the record (``suffix``: e.g. ``_large``,
    for a second run of a benchmark with other options)."""
    md = render(record)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{record['benchmark']}_{record['environment']['platform']}{suffix}"
    path = out / (stem + ("_quick" if record["config"].get("quick") else ""))
    path.with_suffix(".json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    path.with_suffix(".md").write_text(md)
    print(md, flush=True)
    print(f"wrote {path}.json and {path}.md", file=sys.stderr, flush=True)
    return record


# --------------------------------------------------------------------------- the report


@dataclasses.dataclass
class Table:
    """A markdown table of ``rows`` (dicts): ``columns`` are ``(header, value, format)``,
    the value a dotted path into the row or a function of the row, the format a format
    spec or a function (a string value is shown as it is, ``None`` as nothing). The first
    ``n_left`` columns are left-aligned. ``title`` (a ``##`` heading), ``text`` and
    ``notes`` (lines) go before and after."""

    columns: Sequence[tuple[str, str | Callable[[dict], Any], str | Callable[[Any], str] | None]]
    rows: Sequence[dict[str, Any]]
    title: str = ""
    text: str = ""
    notes: Sequence[str] = ()
    n_left: int = 1


def named(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """``{name: row}`` -> ``[{"name": name, **row}]``."""
    return [{"name": k, **v} for k, v in rows.items()]


def dig(node: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def ms(x: float) -> str:
    """A time in ms with about four significant digits."""
    return f"{x:.3f}" if x < 10 else f"{x:.2f}" if x < 1000 else f"{x:.0f}"


def ratio(r: dict[str, float] | None) -> str:
    """A paired ratio: median over median (paired q25-q75)."""
    if r is None:
        return ""
    return f"{r['median_over_median']:.3f} ({r['paired_q25']:.3f}-{r['paired_q75']:.3f})"


def ratio_to_ref(row: dict[str, Any]) -> Any:
    """The row's ``ratio_to_<ref>`` entry; ``"ref"`` in the reference's own row."""
    for key, value in row.items():
        if key.startswith("ratio_to_"):
            return "ref" if key == "ratio_to_" + row.get("name", "") else value
    return None


def cell(row: dict[str, Any], value: Any, fmt: Any) -> str:
    v = value(row) if callable(value) else dig(row, value)
    if v is None or isinstance(v, str):
        return v or ""
    return fmt(v) if callable(fmt) else format(v, fmt or "")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], n_left: int = 1) -> str:
    out = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i < n_left else "---:" for i in range(len(headers))) + "|",
    ]
    return "\n".join(out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def header(title: str, record: dict[str, Any]) -> str:
    env = record["environment"]
    versions = ", ".join(
        f"{p} {env[p]}" for p in ("jax", "jaxlib", "optax", "numpy", "scipy", "torch") if env.get(p)
    )
    if record.get("torch_version") and not env.get("torch"):
        versions += f", torch {record['torch_version']}"
    versions += "".join(f", {k} {v}" for k, v in (env.get("jax_plugins") or {}).items())
    driver = (env.get("gpu_driver") or {}).get("driver_version")
    load = f"Load average (1/5/15 min) at start {env.get('load_average_1_5_15min')}"
    if "load_average_at_end" in record:
        load += f", at end {record['load_average_at_end']}"
    if "total_runtime_s" in record:
        load += f"; total {record['total_runtime_s']:.0f} s"
    quick = (
        " **--quick run (smoke test: few steps and repeats).**"
        if record["config"].get("quick")
        else ""
    )
    return (
        f"# {title} ({env['platform']})\n\n"
        f"Device: {env.get('device_kind')} ({env.get('device')})"
        f"{f', driver {driver}' if driver else ''}, device count "
        f"{env.get('device_count')}, CPU model: {env.get('cpu_model')}, cores: "
        f"{env.get('cpu_count')}. {versions}. {load}.{quick}"
    )


def render(record: dict[str, Any]) -> str:
    """The markdown report of a record: a header with the device and versions, then the
    benchmark's ``report(record)`` blocks."""
    mod = importlib.import_module(f"benchmarks.{record['benchmark']}")
    parts = [header(mod.TITLE, record)]
    for block in mod.report(record):
        if isinstance(block, str):
            parts.append(block)
            continue
        parts += [f"## {block.title}"] if block.title else []
        parts += [block.text] if block.text else []
        headers = [c[0] for c in block.columns]
        cells = [[cell(row, v, f) for _, v, f in block.columns] for row in block.rows]
        parts.append(markdown_table(headers, cells, block.n_left))
        parts += ["\n".join(block.notes)] if block.notes else []
    return "\n\n".join(parts) + "\n"
