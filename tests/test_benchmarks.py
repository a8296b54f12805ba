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
SUITE = ("update_throughput", "loop_overhead", "sweep_speedup", "tuning", "quasi_newton",
         "bounded", "least_squares", "implicit_diff")  # fmt: skip


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


# --------------------------------------------------------------------------- --gpu-report


def _param_names(module: str) -> set[str]:
    """The option names a benchmark declares (its ``PARAMS`` keys), read from its source:
    importing quasi_newton would turn on float64 for this whole process."""
    import ast

    tree = ast.parse((REPO / "benchmarks" / f"{module}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "PARAMS" for t in node.targets
        ):
            return {k.value for k in node.value.keys}
    raise AssertionError(f"{module} declares no PARAMS")


def test_gpu_plan_covers_the_suite_within_its_deadline_with_known_options():
    """The GPU plan runs every benchmark of the suite, its budgets fit the deadline, and
    every option it (or its rehearsal) sets is one the benchmark declares."""
    from benchmarks import __main__ as suite
    from benchmarks import gpu_report as G

    plan = G.plan_for(None, rehearse=False)
    assert {e.name for e, _ in plan} == set(suite.SUITE)
    assert len({e.key for e, _ in plan}) == len(plan)  # one file name each
    assert sum(e.budget_s for e, _ in plan) <= G.DEADLINE_S
    for entry, options in plan + G.plan_for(None, rehearse=True):
        assert set(options) <= _param_names(entry.name), entry.key
    sweep = dict(G.plan_for(["sweep_speedup"], rehearse=False)[0][1])
    assert max(sweep["scaling_ks"]) == 4096 and sweep["members_k"] == 64
    table = G.plan_table(plan, G.DEADLINE_S)
    assert "| update_throughput_optimizers |" in table and "| total |" in table


def test_gpu_report_summarises_recorded_results_and_keeps_them_in_one_tar(tmp_path):
    """run_plan with a stand-in runner that 'runs' a benchmark by copying its committed
    record: every headline reads, the report and the archive are written after each."""
    import tarfile

    from benchmarks import gpu_report as G

    results = REPO / "benchmarks" / "results"

    def runner(entry, options, out, cap_s):
        src = results / f"{entry.name}_cpu.json"
        (out / f"{entry.name}_cpu{'_' + entry.tag if entry.tag else ''}.json").write_text(
            src.read_text()
        )
        return {"status": "ok", "returncode": 0, "wall_s": 1.0}

    plan = G.plan_for(None, rehearse=False)
    tar = tmp_path / "back" / "gpu_results.tar"
    report = G.run_plan(plan, tmp_path / "out", deadline_s=60, rehearse=False, tar=tar,
                        runner=runner)  # fmt: skip
    for r in report["results"]:
        assert r["status"] == "ok" and r["file"], r
        assert r["headline"] and "headline error" not in r["headline"], r
    ut = report["results"][0]["headline"]["adam f32 2^24 1 leaves"]
    assert "ours/optax" in ut and "% copy BW" in ut and "fused (cpu)/optax" in ut
    md = (tmp_path / "out" / "gpu_report.md").read_text()
    assert md.count("| ok |") == len(plan) and "minimize/hand-written" in md
    with tarfile.open(tar) as archive:
        names = set(archive.getnames())
    assert {"gpu_report.json", "gpu_report.md", "sweep_speedup_cpu.json"} <= names
    assert "update_throughput_cpu_optimizers.json" in names


def test_gpu_report_records_a_failing_and_a_hanging_benchmark_and_goes_on(tmp_path, monkeypatch):
    """Each benchmark runs in its own process: one that raises is recorded with its
    error, one that outlives its cap is killed and recorded so, and the run goes on."""
    from benchmarks import gpu_report as G

    pkg = tmp_path / "fakebench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "boom.py").write_text("def run(quick, **o):\n    raise RuntimeError('no GPU here')\n")
    (pkg / "hang.py").write_text("import time\ndef run(quick, **o):\n    time.sleep(600)\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{__import__('os').pathsep}{REPO}")
    plan = [(G.Entry("fakebench.boom", 5, {}, {}), {}), (G.Entry("fakebench.hang", 2, {}, {}), {})]
    report = G.run_plan(plan, tmp_path / "out", deadline_s=60, rehearse=False)
    boom, hang = report["results"]
    assert boom["status"] == "failed" and "RuntimeError: no GPU here" in boom["error"]
    assert hang["status"] == "timeout" and hang["wall_s"] < 30
    md = (tmp_path / "out" / "gpu_report.md").read_text()
    assert "| fakebench.boom | failed |" in md and "| fakebench.hang | timeout |" in md


def test_the_driver_is_read_from_nvidia_smi_and_its_absence_is_no_error(tmp_path, monkeypatch):
    """A stand-in nvidia-smi on PATH (the query's CSV line, as the real one prints it):
    the environment names the driver; without it, None and the report says so."""
    from benchmarks import _timing as T
    from benchmarks import gpu_report as G

    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '580.159.04, NVIDIA H200, 143771 MiB'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    gpu = T.nvidia_smi()
    assert gpu == {"driver_version": "580.159.04", "name": "NVIDIA H200",
                   "memory.total": "143771 MiB"}  # fmt: skip
    assert "NVIDIA H200, 143771 MiB, driver 580.159.04" in G.device_line({"gpu": gpu})
    smi.unlink()
    assert T.nvidia_smi() is None
    assert "no nvidia-smi" in G.device_line({"gpu": None})
