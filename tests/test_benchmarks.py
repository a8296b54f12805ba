"""The benchmark suite's quick mode runs end to end and writes honest records.

A smoke test: it checks that every benchmark runs and records what a reader needs to
trust its numbers (device, versions, spread over repeats, compile time apart), never
how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUITE = ("update_throughput", "loop_overhead", "sweep_speedup", "tuning", "quasi_newton")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    if not (REPO / "benchmarks" / "__main__.py").exists():
        pytest.skip("not a source checkout")
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    return proc, out


def test_quick_suite_runs_every_benchmark_and_prints_tables(quick_run):
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in SUITE:
        assert f"# benchmark: {name} (quick)" in proc.stdout
    assert proc.stdout.count("|---") >= len(SUITE)


@pytest.mark.parametrize("name", SUITE)
def test_each_result_names_its_device_and_versions_and_keeps_quick_apart(quick_run, name):
    _, out = quick_run
    files = list(out.glob(f"{name}_*_quick.json"))
    assert len(files) == 1 and files[0].with_suffix(".md").exists()
    result = json.loads(files[0].read_text())
    env = result["environment"]
    for key in ("platform", "device_kind", "jax", "jaxlib"):
        assert env.get(key), key
    assert result["config"]["quick"] is True


def test_records_re_render_to_their_markdown(quick_run, tmp_path):
    """One renderer turns any record into its report: each quick record gives back the
    markdown written with it, and the committed results (older runs too) still render."""
    _, out = quick_run
    quick = sorted(out.glob("*_quick.json"))
    committed = sorted((REPO / "benchmarks" / "results").glob("*.json"))
    copies = []
    for i, path in enumerate(quick + committed):
        copies.append(tmp_path / f"{i}_{path.name}")
        copies[-1].write_text(path.read_text())
    proc = subprocess.run([sys.executable, "-m", "benchmarks.render", "--write", *map(str, copies)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for path, copy in zip(quick + committed, copies, strict=True):
        md = copy.with_suffix(".md").read_text()
        assert md.startswith("# ") and "|---" in md, path.name
        if path in quick:
            assert md == path.with_suffix(".md").read_text(), path.name


@pytest.mark.parametrize("name", SUITE)
def test_every_spread_is_ordered_and_compile_time_is_apart(quick_run, name):
    _, out = quick_run
    result = json.loads(next(out.glob(f"{name}_*_quick.json")).read_text())
    stats = _stats(result, [])
    assert stats
    for s in stats:
        assert s["min"] <= s["median"] <= s["max"], s
    if name != "update_throughput":  # times compiles itself (checked below)
        compiles = _compiles(result, [])
        assert compiles and all(c["xla_compile_s"] >= 0 and c["wall_s"] > 0 for c in compiles)


def _compiles(node, found):
    """Every compile record (JAX compile events of a first call) in a result."""
    if isinstance(node, dict):
        if {"xla_compile_s", "wall_s"} <= node.keys():
            found.append(node)
        for v in node.values():
            _compiles(v, found)
    elif isinstance(node, list):
        for v in node:
            _compiles(v, found)
    return found


def _stats(node, found):
    """Every {min, median, max} record in a result."""
    if isinstance(node, dict):
        if {"min", "median", "max"} <= node.keys():
            found.append(node)
        for v in node.values():
            _stats(v, found)
    elif isinstance(node, list):
        for v in node:
            _stats(v, found)
    return found


def test_update_throughput_times_every_library_with_spread_and_compile_apart(quick_run):
    _, out = quick_run
    result = json.loads(next(out.glob("update_throughput_*_quick.json")).read_text())
    assert {r["dtype"] for r in result["results"]} == {"float32", "bfloat16"}
    assert {r["leaves"] for r in result["results"]} == {1, 200}
    for r in result["results"]:
        assert (
            r["max_abs_diff_params_after_one_step"] < 1e-2
        )  # ours and optax computed the same step
        for lib in ("jaxopt_lab", "optax"):
            info = r["libraries"][lib]
            assert info["donation_ok"]
            assert info["compile_s"]["lower_plus_compile"]["median"] > 0
            t = info["time_ms"]
            assert 0 < t["min"] <= t["median"] <= t["max"]
            assert 0 < info["fraction_of_copy_bandwidth"]
    assert len(_stats(result, [])) > 20


def test_tuning_compares_grid_and_optuna_on_one_compile_per_method():
    """benchmarks/tuning.py on a tiny budget (digits MLP, K=3, 3 segments of 3 steps, and
    fine: 9 segments of 1 step): every method reports what it chose on validation and its
    test accuracy, Optuna's later trials compile nothing, its segmented runs (coarse and
    fine) give the grid member's validation history, and the goals are checked for each
    pairing of granularities."""
    pytest.importorskip("optuna")  # the `bench` extra; CI installs only `test`
    from benchmarks import _report as R
    from benchmarks import tuning

    record = tuning.run(quick=True, problems=["digits_mlp"], ks=[3], segments=3,
                        segment_steps=3, repeats=1)  # fmt: skip
    sec = record["problems"]["digits_mlp"]
    rows = sec["variants"]
    pruned = ["optuna"] + ["halving"] * tuning.has_halving()
    want = {"grid K=3"} | {f"{m} K=3 ({n}-step rungs)" for m in pruned for n in (3, 1)}
    assert set(rows) == want
    for row in rows.values():
        assert 0 <= row["best_validation"] <= 1 and 0 <= row["test_accuracy"] <= 1
        assert 1e-4 <= row["learning_rate"] <= 1.0
        assert 0 < row["member_steps"] <= 3 * 9 and row["first_call_s"] >= row["compile_s"] > 0
    assert rows["grid K=3"]["member_steps"] == 3 * 9
    for n in (3, 1):
        optuna = rows[f"optuna K=3 ({n}-step rungs)"]
        assert optuna["segment_steps"] == n and optuna["segments"] == 9 // n
        assert optuna["member_steps"] == n * optuna["segments_run"]
        compiles = optuna["first_call_xla_compiles_in_trials"]
        assert compiles["trial_0"]["train"] == 1 and compiles["later_trials_count"] == 2
        assert sum(compiles["later_trials"].values()) == 0  # the learning rate is data
    for check in (sec["check"], sec["check_fine"]):
        assert check["max_abs_diff_validation_accuracy"] <= 1 / sec["validation_rows"]
    assert len(sec["check_fine"]["segmented_run_validation"]) == 9
    pairs = sec["goals"]["3"]["optuna_vs_halving"]
    if tuning.has_halving():
        assert [(p["halving"], p["optuna"], p["like_for_like"]) for p in pairs] == [
            ("fine", "fine", True), ("coarse", "coarse", True),
            ("fine", "coarse", False), ("coarse", "fine", False),
        ]  # fmt: skip
        assert set(sec["goals"]["3"]["halving_vs_grid"]) == {"coarse", "fine"}
    md = R.render(record)
    assert "| optuna K=3 (1-step rungs) |" in md and "| grid K=3 |" in md
