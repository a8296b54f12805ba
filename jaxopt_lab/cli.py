"""The ``jaxopt-lab`` command.

* ``jaxopt-lab sweep``: one optimizer over a log-spaced learning-rate grid on a built-in
  problem, every learning rate (and seed) trained at once in one compiled program. Prints
  a table and the best learning rate; writes the results (``sweep.npz``) and PNG plots.
  With no arguments: the digits MLP, adam, 32 learning rates. On a data problem with a
  validation set every member is evaluated on it during the sweep and the best learning
  rate is the one with the best validation metric; the table shows it next to the test
  metric of the final params.
* ``jaxopt-lab compare``: several optimizers on one problem, each at the best learning
  rate of its own sweep, their loss curves in one plot.
* ``jaxopt-lab trajectories``: the paths of several optimizers on a 2-D test function's
  contours.
* ``jaxopt-lab lr-find``: the learning-rate range test (:func:`jaxopt_lab.lr_find`), its
  suggestion, spread over seeds and blow-up, and its plot.
* ``jaxopt-lab bench``: the benchmark suite of a source checkout (quick by default).

A user error (unknown name, bad grid, unwritable folder, ...) prints one line and exits
with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from jaxopt_lab.errors import InputError

OPTIMIZERS = (
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "adamax", "nadam",
    "amsgrad", "adabelief", "radam", "lion", "lamb", "yogi", "adadelta", "sign_sgd",
)  # fmt: skip
DEFAULT_OUT = "jaxopt-lab-out"


class UsageError(InputError):
    """A mistake in the command line or its environment: reported in one line, status 2."""


# --------------------------------------------------------------------------------------
# Names -> objects
# --------------------------------------------------------------------------------------


def optimizer_factory(name: str) -> Callable[[Any], Any]:
    """``learning_rate -> optimizer`` for a name of :data:`OPTIMIZERS` (``momentum`` and
    ``nesterov`` are ``sgd`` with momentum 0.9)."""
    import jaxopt_lab as jol

    if name not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    if name == "momentum":
        return lambda lr: jol.sgd(lr, momentum=0.9)
    if name == "nesterov":
        return lambda lr: jol.sgd(lr, momentum=0.9, nesterov=True)
    return getattr(jol, name)


def _problem_names() -> tuple[list[str], list[str]]:
    from jaxopt_lab import problems

    return list(problems.TEST_FUNCTIONS), list(problems.DATA_PROBLEMS)


def load_problem(name: str) -> Any:
    from jaxopt_lab import problems

    functions, data = _problem_names()
    if name in problems.TEST_FUNCTIONS:
        return problems.TEST_FUNCTIONS[name]()
    if name in problems.DATA_PROBLEMS:
        try:
            return problems.DATA_PROBLEMS[name]()
        except ImportError as e:  # the digits need scikit-learn
            raise UsageError(f"problem {name!r} needs scikit-learn: {e}") from None
    raise UsageError(f"unknown problem {name!r}; choose from {', '.join(functions + data)}")


def _names(text: str, what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"{what} is empty")
    return names


def learning_rate_grid(lr_min: float, lr_max: float, num: int) -> Any:
    import numpy as np

    if not (math.isfinite(lr_min) and math.isfinite(lr_max)) or not 0 < lr_min < lr_max:
        raise UsageError(
            f"the learning-rate grid needs 0 < --lr-min < --lr-max, got {lr_min:g} and {lr_max:g}"
        )
    if num < 2:
        raise UsageError(f"--num-lrs must be at least 2, got {num}")
    return np.geomspace(lr_min, lr_max, num)


def writable_folder(path: str) -> Path:
    """Create ``path`` and check a file can be written there, before any work is done."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".jaxopt-lab-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(
            f"cannot write to the output folder {str(out)!r}: {e.strerror or e}"
        ) from None
    return out


# --------------------------------------------------------------------------------------
# sweep
# --------------------------------------------------------------------------------------


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{name} must be at least 1, got {value}")


def run_sweep(args: argparse.Namespace, optimizer: str, problem: Any, checkpoint_dir: Path | None = None,
              progress: bool | None = False) -> Any:  # fmt: skip
    """The sweep that ``args`` describe on ``problem`` (from :func:`load_problem`), for one
    optimizer."""
    import jax.numpy as jnp

    import jaxopt_lab as jol
    from jaxopt_lab.problems import TestFunction

    make = optimizer_factory(optimizer)
    lrs = learning_rate_grid(args.lr_min, args.lr_max, args.num_lrs)
    for flag in ("steps", "epochs", "batch_size", "seeds", "chunk_size", "vmap_width"):
        _positive("--" + flag.replace("_", "-"), getattr(args, flag))
    common = dict(chunk_size=args.chunk_size, vmap_width=args.vmap_width, checkpoint_dir=checkpoint_dir,
                  progress=progress, **pruning(args))  # fmt: skip
    if isinstance(problem, TestFunction):
        if args.epochs is not None or args.batch_size is not None or args.seeds is not None:
            raise UsageError(
                f"{args.problem} is a test function: it takes --steps, not --epochs, --batch-size or --seeds"
            )
        if getattr(args, "eval_every", None) is not None:
            raise UsageError(f"{args.problem} is a test function: it has no validation set to "
                             "evaluate on (--eval-every)")  # fmt: skip
        return jol.sweep(make, problem.fn, problem.x0, lrs, args.steps or 1000, **common)
    if args.epochs is None and args.batch_size is None:  # full batch
        train, steps = problem.train, args.steps or 300
        common.update(evaluation(args, problem, max(1, steps // 10)))
        return jol.sweep(make, lambda p: problem.loss(p, train), None, lrs, steps,
                         init_fn=problem.init_params, seeds=args.seeds, **common)  # fmt: skip
    if args.steps is not None:
        raise UsageError(
            "give --steps (full batch) or --epochs/--batch-size (mini-batch), not both"
        )
    n = int(jnp.shape(problem.train["x"])[0])
    batch = args.batch_size or 64
    if batch > n:
        raise UsageError(f"--batch-size {batch} is larger than the {n} training examples")
    common.update(evaluation(args, problem, n // batch))  # once an epoch
    return jol.sweep(make, problem.loss, None, lrs, init_fn=problem.init_params, data=problem.train,
                     batch_size=batch, epochs=args.epochs or 10, seeds=args.seeds, **common)  # fmt: skip


def pruning(args: argparse.Namespace) -> dict[str, Any]:
    """``--prune halving --eta E --min-steps M``: the sweep's ``prune`` option (empty
    without, and for commands that have no such flags)."""
    import jaxopt_lab as jol

    method = getattr(args, "prune", None)
    if method in (None, "none"):
        for flag in ("eta", "min_steps"):
            if getattr(args, flag, None) is not None:
                raise UsageError(f"--{flag.replace('_', '-')} needs --prune halving")
        return {}
    eta = 3 if args.eta is None else args.eta
    if eta < 2:
        raise UsageError(f"--eta must be at least 2, got {eta}")
    _positive("--min-steps", args.min_steps)
    return {"prune": jol.successive_halving(eta=eta, min_steps=args.min_steps)}


def evaluation(args: argparse.Namespace, problem: Any, default_every: int) -> dict[str, Any]:
    """The sweep's options that evaluate every member on ``problem``'s validation set,
    every ``--eval-every`` steps (default ``default_every``: a tenth of the steps in full
    batch, an epoch in mini-batch mode) and after the last, so that the best learning
    rate is chosen on held-out data, not on the training loss. Empty without a
    validation set."""
    every = getattr(args, "eval_every", None)
    _positive("--eval-every", every)
    if problem.validation is None:
        if every is not None:
            raise UsageError(f"{args.problem} has no validation set to evaluate on (--eval-every)")
        return {}
    if every is None and getattr(args, "prune", None) == "halving":
        default_every = None  # every rung: the sweep's default with pruning
    return dict(eval_fn=problem.metric, eval_data=problem.validation, eval_every=every or default_every,
                eval_mode="max" if problem.metric_name == "accuracy" else "min")  # fmt: skip


def steps_per_epoch(args: argparse.Namespace, problem: Any) -> int | None:
    """The smoothing window for mini-batch loss curves: one epoch (None in full batch)."""
    from jaxopt_lab.problems import DataProblem

    if not isinstance(problem, DataProblem) or (args.epochs is None and args.batch_size is None):
        return None
    return max(1, int(problem.train["x"].shape[0]) // (args.batch_size or 64))


def _per_config(result: Any, values: Any) -> Any:
    """Member values -> one per configuration: NaN for a diverged member, then the mean
    over the seeds that did not diverge (NaN where none)."""
    import numpy as np

    values = np.where(result.diverged, np.nan, np.asarray(values, float))
    if "seed" not in result.axes:
        return values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: every seed diverged
        return np.nanmean(values, -1)


def test_metrics(result: Any, problem: Any) -> Any:
    """The test metric of every configuration's final params (seeds averaged, NaN where
    diverged), or None when ``problem`` has no test set."""
    import jax
    import numpy as np

    from jaxopt_lab.problems import DataProblem

    if not isinstance(problem, DataProblem) or problem.test is None:
        return None
    flat = jax.tree.map(lambda a: a.reshape(-1, *a.shape[result.diverged.ndim :]), result.params)
    metric = np.asarray(jax.jit(jax.vmap(lambda p: problem.metric(p, problem.test)))(flat))
    return _per_config(result, metric.reshape(result.diverged.shape))


def validation_metrics(result: Any) -> Any:
    """The best evaluation of every configuration (seeds averaged, NaN where diverged),
    or None when the sweep did not evaluate."""
    return None if result.evals is None else _per_config(result, result.best_evals)


def sweep_table(result: Any, problem: Any, test: Any = None) -> str:
    """One row per learning rate: final loss (mean over seeds), diverged, and for a data
    problem its best validation metric (when the sweep evaluated) and the test metric of
    the final params (when it has a test set; ``test`` if already computed)."""
    # the training score (final loss; mini-batch: mean over the last epoch), also when
    # the sweep ranked on its evaluations
    final = dataclasses.replace(result, evals=None)._config_scores()[0]
    seeds = "seed" in result.axes
    div = result.diverged.sum(-1) if seeds else result.diverged
    div_text = [
        f"{int(d)}/{result.diverged.shape[-1]}" if seeds else ("yes" if d else "no") for d in div
    ]
    header = ["lr", "final loss", "diverged"]
    columns = [[f"{lr:.4g}" for lr in result.learning_rates], [f"{v:.5g}" for v in final], div_text]
    test = test_metrics(result, problem) if test is None else test
    for name, values in (("val", validation_metrics(result)), ("test", test)):
        if values is not None:
            header.append(f"{name} {problem.metric_name}")
            columns.append([f"{m:.4f}" for m in values])
    if (result.pruned_at >= 0).any():  # the rung each configuration stopped at
        at = result.pruned_at.max(-1) if seeds else result.pruned_at
        header.append("pruned at")
        columns.append([str(int(a)) if a >= 0 else "-" for a in at])
    widths = [max(len(h), *(len(c) for c in col)) for h, col in zip(header, columns, strict=True)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += [
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True))
        for row in zip(*columns, strict=True)
    ]
    return "\n".join(lines)


def _best(result: Any) -> tuple[float | None, str]:
    """(best learning rate or None, a note about it)."""
    from jaxopt_lab.sweep import GridEdgeWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GridEdgeWarning)
        try:
            lr = result.best_learning_rate
        except ValueError:
            return None, "every learning rate diverged: lower --lr-min"
    note = next((str(w.message) for w in caught if issubclass(w.category, GridEdgeWarning)), "")
    return lr, note


def _selection_line(result: Any, problem: Any) -> str | None:
    """What the best learning rate is chosen on, when the sweep evaluated (None if not)."""
    if result.evals is None:
        return None
    n_val = int(problem.validation["y"].shape[0])
    steps = result.eval_steps
    when = (f"the best of {len(steps)} evaluations (every {int(steps[0])} steps)" if len(steps) > 1
            else "one evaluation, after the last step")  # fmt: skip
    line = f"selected on validation {problem.metric_name}: {when} on {n_val} held-out examples"
    if problem.test is not None:
        line += (
            f"; test {problem.metric_name} of the final params on {int(problem.test['y'].shape[0])}"
        )
    return line


def _best_line(result: Any, problem: Any, test: Any) -> str:
    """The printed verdict: the chosen learning rate with what it was chosen on."""
    lr, note = _best(result)
    if lr is None:
        return f"best learning rate: none ({note})"
    k = result.best_index
    scores = []
    val = validation_metrics(result)
    if val is not None:
        scores.append(f"validation {problem.metric_name} {val[k]:.4f}")
    if test is not None:
        scores.append(f"test {problem.metric_name} {test[k]:.4f}")
    final = dataclasses.replace(result, evals=None)._config_scores()[0][k]  # mean over seeds
    scores.append(f"final loss {final:.4g}")
    return f"best learning rate: {lr:.4g} ({', '.join(scores)})" + (
        f"\nnote: {note}" if note else ""
    )


def sweep_command(args: argparse.Namespace) -> int:
    from jaxopt_lab import plots
    from jaxopt_lab.sweep import SweepResult

    out = writable_folder(args.out)
    checkpoints = out / "checkpoints"
    if not args.resume and checkpoints.exists():
        shutil.rmtree(checkpoints)  # a fresh run; --resume keeps the finished chunks
    elif args.resume and not checkpoints.exists():
        print(f"nothing to resume in {checkpoints}: starting afresh")
    problem = load_problem(args.problem)
    t0 = time.perf_counter()
    result: SweepResult = run_sweep(args, args.optimizer, problem, checkpoints, progress=None)
    seconds = time.perf_counter() - t0
    members = int(result.diverged.size)
    print(
        f"{args.optimizer} on {args.problem}: {members} members, {result.losses.shape[-1]} steps each, {seconds:.1f} s"
    )
    if result.config.get("prune"):
        full = members * result.losses.shape[-1]
        rungs = ", ".join(f"{k} after {s}" for s, k in result.config["prune"]["rungs"])
        print(f"successive halving (eta {result.config['prune']['eta']}): kept {rungs} steps; "
              f"{result.member_steps} member-steps run, {result.member_steps / full:.0%} of the grid's {full}")  # fmt: skip
    selection = _selection_line(result, problem)
    if selection:
        print(selection)
    test = test_metrics(result, problem)
    print(sweep_table(result, problem, test))
    print(_best_line(result, problem, test))
    result.save(out / "sweep.npz")
    title = f"{args.optimizer} on {args.problem}"
    written = [out / "sweep.npz", out / "lr_sensitivity.png", out / "loss_curves.png"]
    metric = f"validation {getattr(problem, 'metric_name', '')}"
    plots.lr_sensitivity(result, path=written[1], title=f"Learning-rate sensitivity: {title}",
                         eval_label=f"best {metric}")  # fmt: skip
    plots.loss_curves(result, top=args.top, path=written[2], smooth=steps_per_epoch(args, problem),
                      title=f"Best {args.top} learning rates: {title}")  # fmt: skip
    if result.evals is not None:
        written.append(out / "eval_curves.png")
        plots.eval_curves(result, top=args.top, path=written[-1], ylabel=metric,
                          title=f"Best {args.top} learning rates on validation: {title}")  # fmt: skip
    print(f"wrote {', '.join(map(str, written[:-1]))} and {written[-1]}")
    return 0


# --------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------


def compare_command(args: argparse.Namespace) -> int:
    import numpy as np

    from jaxopt_lab import plots

    names = OPTIMIZERS if args.optimizers == "all" else _names(args.optimizers, "--optimizers")
    for name in names:
        optimizer_factory(name)  # every name checked before any sweep runs
    out = writable_folder(args.out)
    problem = load_problem(args.problem)
    curves, rows = {}, []
    for name in names:
        t0 = time.perf_counter()
        result = run_sweep(args, name, problem)
        lr, note = _best(result)
        seconds = time.perf_counter() - t0
        val = validation_metrics(result)
        if lr is None:
            rows.append((name, "-", "diverged", int(result.diverged.sum()), seconds, "-"))
            continue
        losses = np.asarray(result.losses[result.best_index[0]], float)
        curve = losses.reshape(-1, losses.shape[-1]).mean(
            axis=0
        )  # mean over seeds (and other axes)
        curves[f"{name} (lr {lr:.3g})"] = curve
        rows.append(
            (
                name,
                f"{lr:.4g}" + ("*" if note else ""),
                f"{curve[-1]:.4g}",
                int(result.diverged.sum()),
                seconds,
                "-" if val is None else f"{val[result.best_index]:.4f}",
            )
        )
    print(f"{len(names)} optimizers on {args.problem}, each at its best of {args.num_lrs} learning rates "
          f"in [{args.lr_min:g}, {args.lr_max:g}]")  # fmt: skip
    evaluated = any(r[5] != "-" for r in rows)  # best lr chosen on validation: show it
    val_head = f" {'val ' + problem.metric_name:>14}" if evaluated else ""
    print(
        f"{'optimizer':<10} {'best lr':>10} {'final loss':>12} {'diverged':>9} {'seconds':>8}{val_head}"
    )
    for name, lr_text, final, div, seconds, val in sorted(rows, key=lambda r: _sort_key(r[2])):
        val_text = f" {val:>14}" if evaluated else ""
        print(f"{name:<10} {lr_text:>10} {final:>12} {div:>9d} {seconds:>8.1f}{val_text}")
    if any(r[1].endswith("*") for r in rows):
        print("*: the best learning rate is at the edge of the grid; widen it")
    path = out / f"compare_{args.problem}.png"
    plots.loss_curves(
        curves, path=path, title=f"{args.problem}: each optimizer at its best learning rate"
    )
    print(f"wrote {path}")
    return 0


def _sort_key(final: str) -> float:
    try:
        return float(final)
    except ValueError:
        return math.inf


# --------------------------------------------------------------------------------------
# trajectories
# --------------------------------------------------------------------------------------


def _parse_specs(text: str) -> list[tuple[str, float | None]]:
    """``adam,sgd=0.001`` -> [("adam", None), ("sgd", 0.001)]."""
    specs = []
    for item in _names(text, "--optimizers"):
        name, _, lr = item.partition("=")
        optimizer_factory(name)
        if lr:
            try:
                value = float(lr)
            except ValueError:
                raise UsageError(f"bad learning rate {lr!r} for {name}") from None
            if not (math.isfinite(value) and value > 0):
                raise UsageError(f"the learning rate for {name} must be positive, got {lr}")
            specs.append((name, value))
        else:
            specs.append((name, None))
    return specs


def trajectories_command(args: argparse.Namespace) -> int:
    import jax.numpy as jnp
    import numpy as np

    import jaxopt_lab as jol
    from jaxopt_lab import plots
    from jaxopt_lab.problems import TestFunction

    specs = _parse_specs(args.optimizers)
    problem = load_problem(args.function)
    if not isinstance(problem, TestFunction) or problem.x0.shape != (2,):
        two_d = [n for n in _problem_names()[0] if load_problem(n).x0.shape == (2,)]
        raise UsageError(
            f"{args.function!r} is not a 2-D test function; choose from {', '.join(two_d)}"
        )
    _positive("--steps", args.steps)
    start = problem.x0
    if args.start is not None:
        try:
            start = jnp.asarray([float(v) for v in args.start.split(",")], problem.x0.dtype)
        except ValueError:
            raise UsageError(
                f"--start must be two numbers like -1.5,2, got {args.start!r}"
            ) from None
        if start.shape != (2,) or not bool(jnp.isfinite(start).all()):
            raise UsageError(f"--start must be two finite numbers like -1.5,2, got {args.start!r}")
    out = writable_folder(args.out)
    lrs = learning_rate_grid(args.lr_min, args.lr_max, args.num_lrs)
    paths, rows = {}, []
    for name, lr in specs:
        make = optimizer_factory(name)
        how = "given"
        if lr is None:  # the best of a sweep from the same start
            result = jol.sweep(make, problem.fn, start, lrs, args.steps)
            lr, note = _best(result)
            how = "best of sweep" + (" (grid edge)" if note else "")
            if lr is None:
                rows.append((name, "-", "diverged at every lr", ""))
                continue
        path = np.asarray(jol.trajectory(problem.fn, start, make(lr), args.steps))
        paths[f"{name} (lr {lr:.3g})"] = path
        final = float(problem.fn(jnp.asarray(path[-1])))
        dist = (
            float(np.min(np.linalg.norm(np.asarray(problem.minimizers) - path[-1], axis=1)))
            if len(problem.minimizers)
            else math.nan
        )
        rows.append((name, f"{lr:.4g}", f"{final:.4g}", f"{dist:.3g}", how))
    print(f"{args.function} from ({float(start[0]):g}, {float(start[1]):g}), {args.steps} steps")
    print(f"{'optimizer':<10} {'lr':>10} {'final f':>12} {'to minimizer':>13}  lr chosen")
    for row in rows:
        print(
            f"{row[0]:<10} {row[1]:>10} {row[2]:>12} {row[3]:>13}  {row[4] if len(row) > 4 else ''}"
        )
    file = out / f"trajectories_{args.function}.png"
    plots.contour_trajectories(problem.fn, paths, minimizers=problem.minimizers, path=file,
                               title=f"{args.function}: {args.steps} steps from ({float(start[0]):g}, {float(start[1]):g})")  # fmt: skip
    print(f"wrote {file}")
    return 0


# --------------------------------------------------------------------------------------
# lr-find
# --------------------------------------------------------------------------------------


def run_lr_find(args: argparse.Namespace, problem: Any) -> Any:
    """The range test that ``args`` describe on ``problem`` (from :func:`load_problem`)."""
    import jax.numpy as jnp

    import jaxopt_lab as jol
    from jaxopt_lab.problems import TestFunction

    make = optimizer_factory(args.optimizer)
    if (
        not (math.isfinite(args.lr_min) and math.isfinite(args.lr_max))
        or not 0 < args.lr_min < args.lr_max
    ):
        raise UsageError(f"the range test needs 0 < --lr-min < --lr-max, got {args.lr_min:g} and {args.lr_max:g}")  # fmt: skip
    if args.steps < 2:  # a ramp needs two ends
        raise UsageError(f"--steps must be at least 2, got {args.steps}")
    for flag in ("seeds", "batch_size"):
        _positive("--" + flag.replace("_", "-"), getattr(args, flag))
    smoothing = args.smoothing  # default: lr_find's, a twentieth of the ramp
    if smoothing is not None and not 0 <= smoothing < 1:
        raise UsageError(f"--smoothing must be in [0, 1), got {smoothing:g}")
    common = dict(lr_min=args.lr_min, lr_max=args.lr_max, steps=args.steps, smoothing=smoothing)
    if isinstance(problem, TestFunction):
        if args.seeds is not None or args.batch_size is not None:  # one start, no data
            raise UsageError(
                f"{args.problem} is a test function: it takes no --seeds or --batch-size"
            )
        return jol.lr_find(make, problem.fn, problem.x0, **common)
    seeds = 3 if args.seeds is None else args.seeds  # three seeds give the suggestion a spread
    if args.batch_size is None:  # full batch
        train = problem.train
        return jol.lr_find(make, lambda p: problem.loss(p, train), None, seeds=seeds,
                           init_fn=problem.init_params, **common)  # fmt: skip
    n = int(jnp.shape(problem.train["x"])[0])
    if args.batch_size > n:
        raise UsageError(f"--batch-size {args.batch_size} is larger than the {n} training examples")
    return jol.lr_find(make, problem.loss, None, seeds=seeds, init_fn=problem.init_params,
                       data=problem.train, batch_size=args.batch_size, **common)  # fmt: skip


def _blowup_line(found: Any, lr_max: float) -> str:
    """Where the loss blew up, per seed, in one line."""
    import numpy as np

    blown = np.isfinite(found.blowup_lr)
    if not blown.any():
        return f"the loss did not blow up below --lr-max {lr_max:g}: raise it to see where training breaks"
    text = f"loss blew up at lr {np.median(found.blowup_lr[blown]):.3g}"
    if blown.size > 1:
        text += (
            f" (median of {int(blown.sum())}/{blown.size} seeds that blew up; per seed: "
            + ", ".join(
                "-" if not b else f"{lr:.3g}" for b, lr in zip(blown, found.blowup_lr, strict=True)
            )
            + ")"
        )
    return text  # fmt: skip


def lr_find_command(args: argparse.Namespace) -> int:
    from jaxopt_lab import plots

    problem = load_problem(args.problem)
    out = writable_folder(args.out)
    t0 = time.perf_counter()
    found = run_lr_find(args, problem)
    seconds = time.perf_counter() - t0
    seeds = found.losses.shape[0]
    mode = "full batch" if args.batch_size is None else f"batches of {args.batch_size}"
    print(f"lr-find: {args.optimizer} on {args.problem}, {seeds} seed{'s' * (seeds > 1)}, {args.steps} steps "
          f"from lr {args.lr_min:g} to {args.lr_max:g} ({mode}), {seconds:.1f} s")  # fmt: skip
    low, high = found.spread
    spread = f" (seeds: {low:.3g} to {high:.3g})" if seeds > 1 else ""
    print(f"suggested learning rate: {found.suggestion:.4g}{spread}")
    print(_blowup_line(found, args.lr_max))
    path = out / "lr_find.png"
    plots.lr_find(found, path=path, title=f"Range test: {args.optimizer} on {args.problem}")
    print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------------------
# bench
# --------------------------------------------------------------------------------------


def bench_command(args: argparse.Namespace) -> int:
    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "__main__.py").exists():
        raise UsageError("the benchmark suite ships with the source checkout (benchmarks/), "
                         "not with the installed package: run this from an editable install of a clone")  # fmt: skip
    command = [sys.executable, "-m", "benchmarks", *(["--full"] if args.full else [])]
    if args.only:
        command += ["--only", args.only]
    if args.out:
        command += ["--out", str(writable_folder(args.out).resolve())]
    return subprocess.call(command, cwd=root)


# --------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, status 2 (argparse prints the usage too)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _grid_options(p: argparse.ArgumentParser, num_lrs: int) -> None:
    p.add_argument(
        "--lr-min", type=float, default=1e-4, help="smallest learning rate (default 1e-4)"
    )
    p.add_argument("--lr-max", type=float, default=1.0, help="largest learning rate (default 1)")
    p.add_argument(
        "--num-lrs", type=int, default=num_lrs, help=f"log-spaced grid size (default {num_lrs})"
    )


def _training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--problem",
        default="digits_mlp",
        help="a problem of jaxopt_lab.problems (default digits_mlp)",
    )
    p.add_argument("--steps", type=int, default=None,
                   help="full-batch steps (default: 1000 on a test function, 300 on a data problem)")  # fmt: skip
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="mini-batch epochs on a data problem (default 10 once --epochs or --batch-size is given)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="mini-batch size for a data problem (default 64)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds per learning rate (data problems): a band in the plot",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="members per compiled call, a checkpoint each (default: all, at most 64 per device)",
    )
    p.add_argument("--vmap-width", type=int, default=None,
                   help="members computed in lockstep; chunks are rounded up to a multiple (default: from the flops)")  # fmt: skip
    p.add_argument("--eval-every", type=int, default=None,
                   help="steps between evaluations on a data problem's validation set, which choose the best "
                        "learning rate (default: a tenth of the steps in full batch, an epoch in mini-batch)")  # fmt: skip


def _add_lr_find(sub: Any) -> None:
    p = sub.add_parser("lr-find", help="the learning-rate range test, with its plot",
                       description="Train with a learning rate growing exponentially from --lr-min to --lr-max "
                                   "(Smith 2017), seeds vmapped in one compiled program; print the suggested "
                                   "learning rate, its spread over seeds and where the loss blew up; write "
                                   "lr_find.png.")  # fmt: skip
    p.add_argument(
        "--problem",
        default="digits_mlp",
        help="a problem of jaxopt_lab.problems (default digits_mlp)",
    )
    p.add_argument(
        "--optimizer", default="adam", help=f"one of {', '.join(OPTIMIZERS)} (default adam)"
    )
    p.add_argument(
        "--lr-min", type=float, default=1e-6, help="first learning rate of the ramp (default 1e-6)"
    )
    p.add_argument(
        "--lr-max", type=float, default=10.0, help="last learning rate of the ramp (default 10)"
    )
    p.add_argument(
        "--steps",
        type=int,
        default=200,
        help="steps of the ramp, one learning rate each (default 200)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="runs from different inits (data problems; default 3)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="mini-batch size on a data problem, batches reshuffled every epoch (default: full batch)",
    )
    p.add_argument(
        "--smoothing",
        type=float,
        default=None,
        help="weight of the past in the loss's moving average, in [0, 1), which spans about "
        "1/(1 - smoothing) steps (default 1 - 20/steps: a twentieth of the ramp)",
    )
    p.add_argument("--out", default=os.path.join(DEFAULT_OUT, "lr-find"), help="output folder")
    p.set_defaults(func=lr_find_command)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxopt-lab", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("sweep", help="one optimizer over a learning-rate grid (vmapped)",
                       description="Train one optimizer at every learning rate of a log-spaced grid, at once, "
                                   "on a built-in problem; print a table and the best learning rate; write "
                                   "sweep.npz, lr_sensitivity.png and loss_curves.png. On a data problem with "
                                   "a validation set, every member is evaluated on it and the best learning "
                                   "rate is chosen on it (eval_curves.png shows the evaluations).")  # fmt: skip
    _training_options(p)
    p.add_argument(
        "--optimizer", default="adam", help=f"one of {', '.join(OPTIMIZERS)} (default adam)"
    )
    _grid_options(p, 32)
    p.add_argument("--top", type=int, default=5, help="loss curves drawn (default 5)")
    p.add_argument("--out", default=os.path.join(DEFAULT_OUT, "sweep"), help="output folder")
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse the chunks an interrupted run left in OUT/checkpoints",
    )
    p.add_argument("--prune", choices=("none", "halving"), default="none",
                   help="halving: successive halving, only the best 1/eta of the learning rates go on at "
                        "each rung (default none: every one runs to the end)")  # fmt: skip
    p.add_argument("--eta", type=int, default=None,
                   help="with --prune halving: the reduction factor (default 3)")  # fmt: skip
    p.add_argument("--min-steps", type=int, default=None,
                   help="with --prune halving: the first rung, in steps (default: the rungs that leave one)")  # fmt: skip
    p.set_defaults(func=sweep_command)

    p = sub.add_parser("compare", help="several optimizers, each at its best learning rate",
                       description="Sweep each optimizer's learning rate on one problem, then plot each one's "
                                   "loss curve at its best learning rate.")  # fmt: skip
    _training_options(p)
    p.add_argument(
        "--optimizers", default="sgd,momentum,rmsprop,adam", help="comma-separated names, or 'all'"
    )
    _grid_options(p, 16)
    p.add_argument("--out", default=os.path.join(DEFAULT_OUT, "compare"), help="output folder")
    p.set_defaults(func=compare_command)

    p = sub.add_parser("trajectories", help="optimizer paths on a 2-D function's contours",
                       description="Run several optimizers from one start on a 2-D test function and draw their "
                                   "paths on its contours. A learning rate not given (name=lr) is the best of a "
                                   "sweep over the grid.")  # fmt: skip
    p.add_argument(
        "--function", default="rosenbrock", help="a 2-D test function of jaxopt_lab.problems"
    )
    p.add_argument(
        "--optimizers",
        default="sgd,momentum,rmsprop,adam",
        help="comma-separated names, each optionally name=lr",
    )
    p.add_argument("--start", default=None, help="starting point x,y (default: the function's own)")
    p.add_argument("--steps", type=int, default=500, help="steps per optimizer (default 500)")
    _grid_options(p, 24)
    p.add_argument("--out", default=os.path.join(DEFAULT_OUT, "trajectories"), help="output folder")
    p.set_defaults(func=trajectories_command)

    _add_lr_find(sub)

    p = sub.add_parser("bench", help="the benchmark suite (quick by default)",
                       description="Run the benchmark suite of the source checkout and print its tables.")  # fmt: skip
    p.add_argument(
        "--full", action="store_true", help="full runs (minutes each) instead of quick ones"
    )
    p.add_argument("--only", default=None, help="comma-separated benchmark names")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    p.set_defaults(func=bench_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        # A UsageError of this module, or an argument the library refused (a bad
        # combination, a refused resume): the message names it, which is all a
        # command-line user needs. Any other exception is a bug and keeps its traceback.
        first = (str(e).splitlines() or [""])[0]
        print(f"jaxopt-lab {args.command}: error: {first}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
