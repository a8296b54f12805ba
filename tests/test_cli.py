"""The `jaxopt-lab` command as a user runs it: a subprocess in a fresh folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import assert_real_png

import jaxopt_lab as jol

_SCRIPT = Path(sys.executable).parent / "jaxopt-lab"  # the installed console script


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "jaxopt_lab.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def table_rows(stdout: str, first: str) -> list[list[str]]:
    """The rows of the table whose header starts with ``first``."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first])
    rows = []
    for line in lines[start + 1 :]:
        cells = line.split()
        if not cells or not cells[0][0].isalnum() or cells[0] in ("best", "wrote", "note:", "*:"):
            break
        rows.append(cells)
    return rows


def test_default_sweep_is_the_readme_main_job(tmp_path):
    proc = run_cli("sweep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "adam on digits_mlp: 32 members" in proc.stdout
    assert "selected on validation accuracy: the best of 10 evaluations (every 30 steps)" in (
        proc.stdout
    )
    header = next(line for line in proc.stdout.splitlines() if line.split()[:1] == ["lr"])
    assert header.split() == [
        "lr",
        "final",
        "loss",
        "diverged",
        "val",
        "accuracy",
        "test",
        "accuracy",
    ]
    rows = table_rows(proc.stdout, "lr")
    assert len(rows) == 32
    lrs = np.array([float(r[0]) for r in rows])
    np.testing.assert_allclose(lrs, np.geomspace(1e-4, 1.0, 32), rtol=1e-3)
    best_line = next(
        line for line in proc.stdout.splitlines() if line.startswith("best learning rate")
    )
    best_lr = float(best_line.split()[3])
    out = tmp_path / "jaxopt-lab-out" / "sweep"
    saved = jol.SweepResult.load(out / "sweep.npz")
    assert saved.losses.shape == (32, 300) and saved.evals.shape == (32, 10)
    np.testing.assert_array_equal(saved.eval_steps, np.arange(30, 301, 30))
    assert best_lr == pytest.approx(saved.best_learning_rate, rel=1e-3)
    # chosen on validation: the best lr has the best validation accuracy of the table
    k = int(np.argmin(np.abs(lrs - best_lr)))
    val, test = np.array([float(r[3]) for r in rows]), np.array([float(r[4]) for r in rows])
    assert val[k] == val.max() and f"validation accuracy {val[k]:.4f}" in best_line
    assert f"test accuracy {test[k]:.4f}" in best_line
    # the goal of issue 16: its test accuracy is within 1 point of the grid's best
    assert test.max() - test[k] <= 0.01
    for png in ("lr_sensitivity.png", "loss_curves.png", "eval_curves.png"):
        assert_real_png(out / png)


def test_sweep_with_options_then_resume(tmp_path):
    options = ["--problem", "linear_regression", "--optimizer", "sgd", "--epochs", "2", "--batch-size", "16",
               "--seeds", "2", "--num-lrs", "6", "--lr-min", "1e-3", "--lr-max", "1e3", "--chunk-size", "4", "--vmap-width", "2",
               "--out", "run"]  # fmt: skip
    first = run_cli("sweep", *options, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    rows = table_rows(first.stdout, "lr")
    assert len(rows) == 6 and all(r[2].endswith("/2") for r in rows)  # diverged: count over 2 seeds
    assert (
        rows[-1][2] == "2/2" and rows[0][2] == "0/2"
    )  # plain SGD at lr 1000 diverges for both seeds
    result = jol.SweepResult.load(tmp_path / "run" / "sweep.npz")
    assert result.shape == (6, 2) and result.diverged[-1].all() and not result.diverged[0].any()
    # an interrupted run: one of the finished chunks is lost; --resume recomputes only it
    chunks = sorted((tmp_path / "run" / "checkpoints").glob("chunk_*.npz"))
    assert len(chunks) == 3  # 12 members in chunks of 4
    chunks[1].unlink()
    again = run_cli("sweep", *options, "--resume", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    resumed = jol.SweepResult.load(tmp_path / "run" / "sweep.npz")
    np.testing.assert_array_equal(resumed.losses, result.losses)
    np.testing.assert_array_equal(resumed.diverged, result.diverged)
    # resuming with another grid is refused with the differing field named
    other = run_cli(
        "sweep", *options[:-2], "--out", "run", "--num-lrs", "5", "--resume", cwd=tmp_path
    )
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert "learning" in other.stderr.lower() and len(other.stderr.strip().splitlines()) == 1


def test_compare_prints_each_optimizers_best_and_plots_their_curves(tmp_path):
    proc = run_cli("compare", "--problem", "rosenbrock", "--optimizers", "sgd,adam,momentum",
                   "--steps", "300", "--num-lrs", "8", "--out", "cmp", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {r[0]: r for r in table_rows(proc.stdout, "optimizer")}
    assert set(rows) == {"sgd", "adam", "momentum"}
    finals = [float(r[2]) for r in rows.values()]
    assert finals == sorted(finals)  # sorted best first
    for name, row in rows.items():  # each best learning rate is the best of its own sweep
        res = jol.sweep(
            {"sgd": jol.sgd, "adam": jol.adam, "momentum": lambda lr: jol.sgd(lr, momentum=0.9)}[name],
            jol.problems.rosenbrock().fn, jol.problems.rosenbrock().x0, np.geomspace(1e-4, 1, 8), 300,
        )  # fmt: skip
        assert float(row[1].rstrip("*")) == pytest.approx(res.best["learning_rate"], rel=1e-3)
    assert_real_png(tmp_path / "cmp" / "compare_rosenbrock.png")


def test_trajectories_draws_each_path(tmp_path):
    proc = run_cli("trajectories", "--function", "himmelblau", "--optimizers", "sgd=0.01,adam",
                   "--steps", "200", "--num-lrs", "6", "--out", "tr", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {r[0]: r for r in table_rows(proc.stdout, "optimizer")}
    assert rows["sgd"][1] == "0.01" and rows["sgd"][-1] == "given"
    assert float(rows["sgd"][3]) < 1e-3  # sgd at 0.01 reaches one of Himmelblau's minima
    assert_real_png(tmp_path / "tr" / "trajectories_himmelblau.png")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep", "--problem", "nope"], "unknown problem 'nope'"),
        (["sweep", "--optimizer", "adamz"], "unknown optimizer 'adamz'"),
        (["sweep", "--lr-min", "1", "--lr-max", "0.1"], "0 < --lr-min < --lr-max"),
        (["sweep", "--num-lrs", "1"], "--num-lrs must be at least 2"),
        (["sweep", "--num-lrs", "many"], "invalid int value"),
        (["sweep", "--steps", "0", "--problem", "rosenbrock"], "--steps must be at least 1"),
        (["sweep", "--steps", "5", "--epochs", "2"], "not both"),
        (["sweep", "--out", "blocker/inside"], "cannot write to the output folder"),
        (["compare", "--optimizers", "adam,foo"], "unknown optimizer 'foo'"),
        (["trajectories", "--function", "digits_mlp"], "not a 2-D test function"),
        (["trajectories", "--optimizers", "adam=fast"], "bad learning rate 'fast'"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert message in proc.stderr


def run_cli_patched(patch: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command, after ``patch`` (Python source, with ``P`` the problems module) ran."""
    code = f"import sys; from jaxopt_lab import cli, problems as P; {patch}; sys.exit(cli.main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)  # fmt: skip


def test_an_input_error_from_deep_in_the_library_prints_one_line_and_exits_2(tmp_path):
    # raised in the body of a problem factory, far from any `_check*` function: the
    # class alone tells the command that it is the user's mistake
    proc = run_cli_patched(
        "P.TEST_FUNCTIONS['rosenbrock'] = lambda: P.ill_conditioned_quadratic(1, 10.0)",
        "sweep", "--problem", "rosenbrock", "--out", "o", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "jaxopt-lab sweep: error: a 1-D quadratic has condition number 1; "
        "got n=1 with condition_number=10.0"
    ]


def test_any_other_error_keeps_its_traceback(tmp_path):
    proc = run_cli_patched(
        "P.TEST_FUNCTIONS['rosenbrock'] = lambda: 1 / 0",
        "sweep", "--problem", "rosenbrock", "--out", "o", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ZeroDivisionError" in proc.stderr


def test_only_the_first_line_of_a_long_input_error_is_printed(tmp_path, monkeypatch, capsys):
    from jaxopt_lab import cli

    def factory():  # grads of another structure than the params: a message of 4 lines
        params = {"b": np.ones(1, np.float32)}
        jol.adam(0.1).update({"a": params["b"]}, jol.adam(0.1).init(params), params)

    monkeypatch.setitem(jol.problems.TEST_FUNCTIONS, "rosenbrock", factory)
    assert cli.main(["sweep", "--problem", "rosenbrock", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "jaxopt-lab sweep: error: The tree structure of the grads/updates does not match "
        "the params's."
    ]


@pytest.mark.parametrize("command", ["sweep", "compare", "trajectories", "lr-find", "bench"])
def test_every_subcommand_has_help(tmp_path, command):
    proc = run_cli(command, "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "--out" in proc.stdout


def test_bench_runs_a_quick_benchmark_and_prints_its_tables(tmp_path):
    if not (Path(jol.__file__).resolve().parents[1] / "benchmarks").is_dir():
        pytest.skip("not a source checkout")
    proc = run_cli("bench", "--only", "loop_overhead", "--out", str(tmp_path / "res"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "# benchmark: loop_overhead (quick)" in proc.stdout and "|---" in proc.stdout
    assert (tmp_path / "res" / "loop_overhead_cpu_quick.json").exists() or list(
        (tmp_path / "res").glob("*.json")
    )
    shutil.rmtree(tmp_path / "res")


def test_sweep_table_reports_diverged_seeds_and_the_test_metric():
    from jaxopt_lab import cli

    prob = jol.problems.linear_regression()._replace(test=jol.problems.linear_regression().train)
    res = jol.sweep(jol.sgd, prob.loss, None, [1e-2, 1e3], init_fn=prob.init_params, data=prob.train,
                    batch_size=16, epochs=2, seeds=2)  # fmt: skip
    header, good, bad = (line.split() for line in cli.sweep_table(res, prob).splitlines())
    assert header == ["lr", "final", "loss", "diverged", "test", "mse"]
    assert good[2] == "0/2" and float(good[3]) < 20
    assert bad[1:] == ["nan", "2/2", "nan"]  # every seed diverged: no metric to average


# --------------------------------------------------------------------------------------
# Evaluation on validation, and lr-find (in process: no interpreter start per case)
# --------------------------------------------------------------------------------------


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    from jaxopt_lab import cli

    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_sweep_evaluates_every_eval_every_steps_and_every_epoch(tmp_path, capsys):
    grid = ["--problem", "logistic_regression", "--num-lrs", "3", "--lr-min", "1e-3"]
    code, out, _ = run_main(capsys, "sweep", *grid, "--steps", "20", "--eval-every", "5",
                            "--out", str(tmp_path / "a"))  # fmt: skip
    assert code == 0
    assert "the best of 4 evaluations (every 5 steps) on 54 held-out examples" in out
    prob = jol.problems.logistic_regression()
    like = prob.init_params(jax.random.key(0))
    res = jol.SweepResult.load(tmp_path / "a" / "sweep.npz", params_like=like)
    np.testing.assert_array_equal(res.eval_steps, [5, 10, 15, 20])
    # the column is each learning rate's best validation accuracy, which chose the best
    flat = [jax.tree.map(lambda a, i=i: a[i], res.params) for i in range(3)]
    last = [float(prob.metric(p, prob.validation)) for p in flat]
    np.testing.assert_allclose(res.evals[:, -1], last, rtol=1e-6)  # the last is the final params'
    rows = table_rows(out, "lr")
    np.testing.assert_allclose([float(r[3]) for r in rows], res.best_evals, atol=5e-5)
    # mini-batch: once an epoch by default (216 examples in batches of 64: 3 steps)
    code, out, _ = run_main(capsys, "sweep", *grid, "--epochs", "2", "--batch-size", "64",
                            "--out", str(tmp_path / "b"))  # fmt: skip
    assert code == 0 and "(every 3 steps)" in out
    res = jol.SweepResult.load(tmp_path / "b" / "sweep.npz")
    np.testing.assert_array_equal(res.eval_steps, [3, 6])
    assert (tmp_path / "b" / "eval_curves.png").exists()


def test_sweep_with_successive_halving_reports_what_ran(tmp_path, capsys):
    grid = ["--problem", "logistic_regression", "--num-lrs", "9", "--steps", "27"]
    code, out, _ = run_main(capsys, "sweep", *grid, "--prune", "halving", "--eta", "3",
                            "--min-steps", "3", "--out", str(tmp_path))  # fmt: skip
    assert code == 0
    assert (
        "successive halving (eta 3): kept 3 after 3, 1 after 9 steps; 63 member-steps run, 26% of the grid's 243"
        in out
    )
    res = jol.SweepResult.load(tmp_path / "sweep.npz")
    np.testing.assert_array_equal(res.eval_steps, np.arange(3, 28, 3))  # every rung: every 3
    rows = table_rows(out, "lr")
    assert [r[-1] for r in rows] == [str(a) if a >= 0 else "-" for a in res.pruned_at]
    assert sorted(res.pruned_at.tolist()).count(-1) == 1 and res.member_steps == 63


def test_compare_on_a_data_problem_shows_the_validation_metric(tmp_path, capsys):
    code, out, _ = run_main(capsys, "compare", "--problem", "logistic_regression", "--optimizers",
                            "sgd,adam", "--steps", "20", "--num-lrs", "3", "--out", str(tmp_path))  # fmt: skip
    assert code == 0
    rows = table_rows(out, "optimizer")
    assert {r[0] for r in rows} == {"sgd", "adam"} and all(0 <= float(r[5]) <= 1 for r in rows)


def test_lr_find_prints_the_suggestion_and_draws_it(tmp_path, capsys):
    code, out, _ = run_main(capsys, "lr-find", "--problem", "logistic_regression", "--steps", "60",
                            "--seeds", "2", "--lr-max", "1e3", "--out", str(tmp_path))  # fmt: skip
    assert code == 0
    prob = jol.problems.logistic_regression()
    want = jol.lr_find(jol.adam, lambda p: prob.loss(p, prob.train), None, 1e-6, 1e3, 60, seeds=2,
                       init_fn=prob.init_params, smoothing=1 - 20 / 60)  # fmt: skip
    lines = out.splitlines()
    assert lines[0].startswith("lr-find: adam on logistic_regression, 2 seeds, 60 steps")
    low, high = want.spread
    assert (
        lines[1]
        == f"suggested learning rate: {want.suggestion:.4g} (seeds: {low:.3g} to {high:.3g})"
    )
    assert lines[2].startswith("loss blew up at lr") or "did not blow up" in lines[2]
    assert_real_png(tmp_path / "lr_find.png")


def test_lr_find_on_a_quadratic_stays_below_the_stability_limit(tmp_path, capsys):
    # f = |x|^2 / 2: plain SGD is stable for lr < 2 and blows up past it
    code, out, _ = run_main(capsys, "lr-find", "--problem", "quadratic", "--optimizer", "sgd",
                            "--lr-min", "1e-3", "--lr-max", "100", "--steps", "100",
                            "--out", str(tmp_path))  # fmt: skip
    assert code == 0
    suggestion = float(out.splitlines()[1].split()[3])
    blowup = float(out.splitlines()[2].split()[5])
    assert 2 / 100 < suggestion < 2 < blowup


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep", "--eval-every", "0"], "--eval-every must be at least 1"),
        (["sweep", "--problem", "rosenbrock", "--eval-every", "5"], "no validation set"),
        (["sweep", "--problem", "linear_regression", "--eval-every", "5"], "no validation set"),
        (["lr-find", "--lr-min", "1", "--lr-max", "0.1"], "0 < --lr-min < --lr-max"),
        (["lr-find", "--steps", "1"], "--steps must be at least 2"),
        (["lr-find", "--seeds", "0"], "--seeds must be at least 1"),
        (["lr-find", "--smoothing", "1"], "--smoothing must be in [0, 1)"),
        (["lr-find", "--batch-size", "100000"], "--batch-size 100000 is larger than"),
        (["lr-find", "--problem", "rosenbrock", "--seeds", "2"], "takes no --seeds"),
        (["lr-find", "--problem", "nope"], "unknown problem 'nope'"),
        (["lr-find", "--optimizer", "adamz"], "unknown optimizer 'adamz'"),
        (["sweep", "--prune", "halving", "--eta", "1"], "--eta must be at least 2"),
        (["sweep", "--eta", "3"], "--eta needs --prune halving"),
        (["sweep", "--min-steps", "3"], "--min-steps needs --prune halving"),
        (["sweep", "--prune", "halving", "--min-steps", "300"], "`min_steps` (300) must be less"),
        (["sweep", "--prune", "halving", "--min-steps", "0"], "--min-steps must be at least 1"),
    ],
)
def test_new_options_refuse_bad_input_in_one_line(tmp_path, capsys, args, message):
    code, out, err = run_main(capsys, *args, "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert err.startswith(f"jaxopt-lab {args[0]}: error: ")
