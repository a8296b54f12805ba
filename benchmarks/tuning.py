"""Tuning: the learning rate of adam chosen by ``jol.sweep`` (a full grid, and a grid with
successive halving) and by Optuna (TPE sampler + Hyperband pruner), on the validation
accuracy, for the same learning-rate range and the same step budget.

Problems (``jaxopt_lab.problems``), each trained from the same initial params (drawn by
``init_params`` from the first half of ``split(key(seed))``):

* ``digits_mlp`` (64-64-10 ReLU): full batch, ``--segments`` x ``--segment-steps`` adam
  steps (default 9 x 27 = 243), evaluated after every segment;
* ``digits_cnn``: mini-batches of ``--batch-size`` (default 32), ``--segments`` epochs
  (default 9), evaluated after every epoch; every method sees the same shuffles (drawn
  from the second half of ``split(key(seed))``, as ``jol.sweep`` and ``jol.fit`` do).

Validation data: ``problem.validation`` where the problem has one; otherwise a stratified
``--validation-fraction`` of ``problem.train`` (scikit-learn's ``train_test_split``,
``random_state=seed``), the rest being trained on. The record says which.

Two pruning granularities, a setting of each pruned method, so that both are compared at
each: *coarse*, one segment = ``--segment-steps`` steps (MLP, default 27) or one epoch (CNN,
33 steps), and *fine*, segments ``--fine`` (default 3) times shorter (MLP: 9 steps, 27
segments; CNN: 11 steps = a third of an epoch, 27 segments). The rows say which: e.g.
``halving K=81 (27-step rungs)`` / ``(9-step rungs)``, CNN ``(1-epoch rungs)`` / ``(11-step
rungs)``. A problem whose segment does not split into ``--fine`` equal parts has no fine rows.

Methods, at K = ``--ks`` (default 27 and 81) learning rates / trials, log-uniform over
``[--lr-min, --lr-max]`` (default 1e-4 to 1):

* ``grid``: ``jol.sweep(jol.adam, loss, None, logspace(K), steps, init_fn=init_params,
  eval_fn=metric, eval_data=validation, eval_mode="max", eval_every=<one coarse segment>)``
  (mini-batch: ``data=, batch_size=, epochs=`` instead of ``steps``): every member runs
  the whole budget; the chosen member is ``best_index`` (best validation accuracy over
  its history). One row per K (coarse evaluations); the best validation accuracy of the
  same grid evaluated every fine segment is recorded too (one untimed call per K, with
  ``--grid-fine-evals``, the default of full runs), as a reference.
* ``halving``: the same call with ``eval_every=<one segment>`` and
  ``prune=jol.successive_halving(eta=--eta (3), min_steps=<one segment>)``: coarse, rungs
  after 1 and 3 segments of 9; fine, after 1, 3 and 9 segments of 27 (only where
  ``jol.successive_halving`` exists; otherwise the rows are left out and the report says so).
* ``optuna``: ``optuna.create_study(direction="maximize", sampler=TPESampler(seed=seed),
  pruner=HyperbandPruner(min_resource=1, max_resource=segments, reduction_factor=eta))``
  (resources counted in segments of the row's granularity: 9 coarse or 27 fine; a fixed
  study name: Hyperband assigns a trial's bracket by a hash of it), ``n_trials=K``,
  the learning rate from ``trial.suggest_float(..., log=True)``. A trial is written as an
  Optuna user writes one: ``opt = jol.adam(lr)``, ``state = opt.init(params)``, then per
  segment one compiled call warm started from the previous segment's params and
  ``state=`` (``jol.minimize(loss, params, opt, 27, state=state)`` for the full-batch MLP:
  the program a sweep member runs, where ``jol.fit`` with ``batch_size=N`` would gather
  the whole train set every step; ``jol.fit(..., epochs=1, key=, state=, start_epoch=e)``
  for the CNN), the validation accuracy (one jitted metric call, read on the host),
  ``trial.report(acc, segment)`` and ``trial.should_prune()``. ``jol.fit`` runs whole
  epochs only, so a fine CNN segment is ``jol.fit(..., chunk, batch_size=32, epochs=1,
  start_epoch=s)`` over the 352-row chunk (11 batches) of the epoch's shuffle that the
  sweep trains on in those 11 steps, gathered by one small jitted call per segment (in the
  trial's time) with its rows laid out so that ``jol.fit``'s own (documented) shuffle of
  the chunk, ``fold_in(key, s)``, gives the sweep's batch order: the same 11 updates. The
  trial's value is its best validation accuracy (the sweep's rule); the chosen trial is
  the best complete one (``study.best_trial``). The learning rate is a traced leaf of
  ``jol.adam``, so every trial reuses the programs its first trial compiled: each trial's
  XLA compiles are counted, apart for ``opt.init`` (small eager ops), the segment
  program(s) (fine CNN: the chunk gather and ``jol.fit``) and the metric.
  Only when Optuna is installed (``pip install jaxopt-lab[bench]``); otherwise the rows
  are left out.

Reported per method: the best validation accuracy reached (that of the chosen
configuration), the chosen learning rate, the test accuracy of the chosen configuration's
final params (``metric(params, problem.test)``), member-steps (updates actually run,
summed over members or trials) and wall time: the first call (compile included; each
method has its own loss and metric function objects, so nothing is compiled for it in
advance) and the median of ``--repeats`` warm calls, the methods interleaved (order
reversed every round). A warm Optuna call is a new study with the same seed (the same
trials: ``segments_run_each_call`` in the record). The first ``jol.sweep`` of the process
also compiles the sweep's helpers (seed keys, the vmapped init), hence its extra XLA
compiles. A cross-check runs one Optuna-style segmented run at a grid learning rate, per
granularity, and compares its validation history (fine: every ``--fine``-th entry) with
the grid member's (the same init, shuffles and updates). The issue's goals are checked in
the report, per halving granularity: halving within 0.5 points of the grid's best
validation accuracy with <= 40% of its member-steps and <= 50% of its (warm) wall time;
and per pairing of a halving granularity with an Optuna one (fine/fine and coarse/coarse
are the like-for-like pairings): at K=81, Optuna's (warm) wall time >= 3x the halving's at
no better accuracy.

Run: ``python -m benchmarks.tuning`` (full) or ``--quick``; results under
``benchmarks/results/tuning_<platform>[_quick].{json,md}``.
"""

from __future__ import annotations

import dataclasses
import warnings
from functools import partial as P  # P(f, *args): the call f(*args)
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_lab as jol
from benchmarks import _report as R
from benchmarks import _timing as T

TITLE = "Tuning: jol.sweep (grid, successive halving) vs Optuna (TPE + Hyperband)"
PROBLEMS = ("digits_mlp", "digits_cnn")
PARAMS = {
    "problems": (list(PROBLEMS), list(PROBLEMS), "problems to tune", PROBLEMS),
    "ks": ([3], [27, 81], "learning rates of a grid = Optuna trials (K)"),
    "segments": (3, 9, "evaluations per run (MLP: segments of --segment-steps; CNN: epochs)"),
    "segment_steps": (6, 27, "digits_mlp full-batch adam steps per segment"),
    "fine": (3, 3, "fine rows: segments this many times shorter (1: no fine rows)"),
    "batch_size": (352, 32, "digits_cnn mini-batch size (quick: 3 steps/epoch, split in 3)"),
    "repeats": (1, 3, "warm timed calls per method, interleaved"),
    "lr_min": (1e-4, 1e-4, "smallest learning rate"),
    "lr_max": (1.0, 1.0, "largest learning rate"),
    "validation_fraction": (0.2, 0.2, "validation share of train when a problem has none"),
    "eta": (3, 3, "halving / Hyperband reduction factor", 2),
    "seed": (0, 0, "seed of the init, the shuffles, the split and the TPE sampler", 0),
    "grid_fine_evals": (False, True, "also run each grid evaluated every fine segment (untimed)"),
}
GRID, HALVING, OPTUNA = "grid", "halving", "optuna"
COARSE, FINE = "coarse", "fine"  # pruning granularities (of halving and Optuna rows)
COMPILE_PARTS = ("opt.init", "train", "metric")  # of an Optuna trial, compiles counted apart


def has_optuna() -> bool:
    try:
        import optuna  # noqa: F401
    except ImportError:
        return False
    return True


def has_halving() -> bool:
    return hasattr(jol, "successive_halving")


# --------------------------------------------------------------------------- the task


@dataclasses.dataclass
class Task:
    """One problem as every method sees it: data on the device, the initial params, the
    budget (``segments`` evaluations, ``seg_steps`` updates apart; ``parts`` segments per
    coarse segment, i.e. per epoch with mini-batches: 1 coarse, ``--fine`` fine) and how
    to build fresh loss / metric function objects (so no method finds another's compiled
    program)."""

    name: str
    problem: Any
    train: Any
    validation: Any
    test: Any
    validation_source: str
    params0: Any
    data_key: jax.Array
    key: jax.Array
    segments: int
    seg_steps: int
    batch_size: int | None  # None: full batch
    parts: int = 1  # segments per coarse segment (per epoch with mini-batches)

    @property
    def steps(self) -> int:
        return self.segments * self.seg_steps

    @property
    def epochs(self) -> int | None:
        return self.segments // self.parts if self.minibatch else None

    @property
    def granularity(self) -> str:
        return COARSE if self.parts == 1 else FINE

    @property
    def rungs(self) -> str:
        """The label of its pruned rows: ``27-step rungs``, ``1-epoch rungs``, ..."""
        if self.minibatch and self.parts == 1:
            return "1-epoch rungs"
        return f"{self.seg_steps}-step rungs"

    def refined(self, parts: int) -> Task | None:
        """The same budget in segments ``parts`` times shorter; None where a segment does
        not split into ``parts`` equal parts (or ``parts`` is 1)."""
        if parts == 1 or self.seg_steps % parts:
            return None
        return dataclasses.replace(
            self, segments=self.segments * parts, seg_steps=self.seg_steps // parts, parts=parts
        )

    @property
    def minibatch(self) -> bool:
        return self.batch_size is not None

    def loss(self) -> Callable:
        """A new loss function object: ``params -> loss`` on the whole train set (full
        batch), ``(params, batch) -> loss`` with mini-batches."""
        prob, train = self.problem, self.train
        if self.minibatch:
            return lambda p, batch: prob.loss(p, batch)
        return lambda p: prob.loss(p, train)

    def metric(self) -> Callable:
        """A new ``(params, data) -> accuracy`` function object."""
        prob = self.problem
        return lambda p, data: prob.metric(p, data)

    def describe(self) -> dict[str, Any]:
        rows = {
            f"{part}_rows": int(jax.tree.leaves(getattr(self, part))[0].shape[0])
            for part in ("train", "validation", "test")
        }
        return {
            "problem": self.name,
            **rows,
            "validation_source": self.validation_source,
            "segments": self.segments,
            "segment_steps": self.seg_steps,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
        }


def split_validation(problem: Any, fraction: float, seed: int) -> tuple[Any, Any, str]:
    """(train, validation, source): the problem's own validation split where it has one,
    else a stratified ``fraction`` of its train set carved off (the rest is train)."""
    validation = getattr(problem, "validation", None)
    if validation is not None:
        return problem.train, validation, "problem.validation"
    from sklearn.model_selection import train_test_split

    y = np.asarray(problem.train["y"])
    rows = np.arange(y.shape[0])
    keep, held = train_test_split(rows, test_size=fraction, stratify=y, random_state=seed)

    def take(idx: np.ndarray) -> Any:
        return jax.tree.map(lambda x: np.asarray(x)[idx], problem.train)

    return (  # sklearn's (shuffled) order, as the problems' own split has it
        take(keep),
        take(held),
        f"stratified {fraction:g} of problem.train (train_test_split, random_state={seed})",
    )


def make_task(name: str, cfg: Any) -> Task:
    problem = getattr(jol.problems, name)()
    train, validation, source = split_validation(problem, cfg.validation_fraction, cfg.seed)
    train, validation, test = jax.device_put((train, validation, problem.test))
    key = jax.random.key(cfg.seed)
    init_key, data_key = jax.random.split(key)  # what jol.sweep(key=key) draws, seed-less
    params0 = jax.block_until_ready(problem.init_params(init_key))
    minibatch = name == "digits_cnn"
    n = data_rows(train)
    batch_size = min(cfg.batch_size, n) if minibatch else None
    return Task(
        name=name,
        problem=problem,
        train=train,
        validation=validation,
        test=test,
        validation_source=source,
        params0=params0,
        data_key=data_key,
        key=key,
        segments=cfg.segments,
        seg_steps=n // batch_size if minibatch else cfg.segment_steps,
        batch_size=batch_size,
    )


def learning_rates(cfg: Any, k: int) -> np.ndarray:
    return np.geomspace(cfg.lr_min, cfg.lr_max, k).astype(np.float32)


# --------------------------------------------------------------------------- the sweeps


def sweep_call(task: Task, lrs: np.ndarray, eta: int | None) -> Callable[[], Any]:
    """The grid (``eta=None``) or the grid with successive halving, as one call."""
    budget = (
        dict(data=task.train, batch_size=task.batch_size, epochs=task.epochs)
        if task.minibatch
        else {}
    )
    prune = {}
    if eta is not None:
        prune["prune"] = jol.successive_halving(eta=eta, min_steps=task.seg_steps)
    return P(
        jol.sweep,
        jol.adam,
        task.loss(),
        None,
        lrs,
        None if task.minibatch else task.steps,
        init_fn=task.problem.init_params,
        key=task.key,
        eval_fn=task.metric(),
        eval_data=task.validation,
        eval_mode="max",
        eval_every=task.seg_steps,
        progress=False,
        **budget,
        **prune,
    )


def member_params(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


def sweep_outcome(task: Task, res: Any, grid_steps: int) -> dict[str, Any]:
    """Best validation accuracy, chosen learning rate, its test accuracy, member-steps."""
    (i,) = res.best_index
    if hasattr(res, "member_steps"):
        member_steps = int(np.sum(res.member_steps))
    else:
        member_steps = grid_steps
    out = {
        "best_validation": float(res.best_evals[i]),
        "learning_rate": float(res.learning_rates[i]),
        "test_accuracy": float(task.problem.metric(member_params(res.params, i), task.test)),
        "member_steps": member_steps,
        "diverged_members": int(np.sum(res.diverged)),
    }
    if hasattr(res, "pruned_at"):
        pruned_at = np.asarray(res.pruned_at)
        out["members_pruned"] = int(np.sum(pruned_at >= 0))
        out["members_to_the_end"] = int(np.sum(pruned_at < 0))
    return out


# --------------------------------------------------------------------------- Optuna


class SegmentedRun:
    """What one Optuna trial runs: ``segments`` compiled calls (``jol.minimize`` full batch,
    ``jol.fit`` one epoch each, or one chunk of an epoch when fine), each warm started
    from the last, the validation accuracy read on the host after each. Built once per
    method: every trial shares its function objects, hence its compiled programs."""

    def __init__(self, task: Task):
        self.task = task
        self.loss = task.loss()
        metric, validation = task.metric(), task.validation
        self.val_acc = jax.jit(lambda p: metric(p, validation))
        if task.minibatch and task.parts > 1:
            self.chunk = jax.jit(partial_epoch(task))

    def segment(self, params: Any, opt: Any, state: Any, s: int) -> tuple[Any, Any]:
        t = self.task
        if t.minibatch and t.parts == 1:
            res = jol.fit(self.loss, params, opt, t.train, batch_size=t.batch_size, epochs=1,
                          key=t.data_key, state=state, start_epoch=s)  # fmt: skip
        elif t.minibatch:  # jol.fit runs whole epochs: one "epoch" over this segment's rows
            res = jol.fit(self.loss, params, opt, self.chunk(s), batch_size=t.batch_size,
                          epochs=1, key=t.data_key, state=state, start_epoch=s)  # fmt: skip
        else:
            res = jol.minimize(self.loss, params, opt, t.seg_steps, state=state)
        return res.params, res.state

    def run(
        self, lr: float, after: Callable[[int, float], bool] = lambda e, acc: False
    ) -> tuple[Any, list[float], dict[str, T.CompileEvents]]:
        """(final params, validation accuracies, compile events of each part of the run:
        ``opt.init``, ``train`` (the segments) and ``metric``); stops early when
        ``after(segment, accuracy)`` (1-based segment) returns True."""
        events = {part: T.CompileEvents() for part in COMPILE_PARTS}
        opt = jol.adam(lr)
        params = self.task.params0
        with events["opt.init"]:
            state = opt.init(params)  # given from the start: one program for every segment
        accs: list[float] = []
        for e in range(self.task.segments):
            with events["train"]:
                params, state = self.segment(params, opt, state, e)
            with events["metric"]:
                accs.append(float(self.val_acc(params)))
            if after(e + 1, accs[-1]):
                break
        return params, accs, events


def partial_epoch(task: Task) -> Callable[[jax.Array], Any]:
    """``s -> chunk``: the train rows of fine segment ``s`` (part ``s % parts`` of epoch
    ``s // parts``: the ``seg_steps`` batches of that epoch's shuffle the sweep trains on
    there), laid out so that ``jol.fit(..., chunk, batch_size, epochs=1, key=data_key,
    start_epoch=s)``, which shuffles its data by ``fold_in(key, s)`` (its documented rule,
    ``jaxopt_lab.loops.epoch_batches``), takes exactly those batches in the sweep's order."""
    from jaxopt_lab.loops import epoch_batches

    n, b, seg, parts = data_rows(task.train), task.batch_size, task.seg_steps, task.parts
    m = seg * b  # rows of a chunk: one "epoch" of seg batches, none left over

    def chunk(s: jax.Array) -> Any:
        e, j = s // parts, s % parts
        batches = epoch_batches(task.data_key, e, n, b)  # what the sweep runs in epoch e
        rows = jax.lax.dynamic_slice_in_dim(batches, j * seg, seg).reshape(-1)
        order = epoch_batches(task.data_key, s, m, b).reshape(-1)  # fit's shuffle of m rows
        return jax.tree.map(lambda x: x[rows[jnp.argsort(order)]], task.train)

    return chunk


def data_rows(data: Any) -> int:
    return int(jax.tree.leaves(data)[0].shape[0])


@dataclasses.dataclass
class StudyOutcome:
    study: Any
    finals: dict[int, Any]  # trial number -> final params (completed trials)
    segments_run: list[int]  # per trial
    compiles: list[dict[str, int]]  # per trial: XLA compiles of each of COMPILE_PARTS
    compile_s: list[float]  # per trial: trace + lower + XLA compile seconds


def optuna_call(task: Task, k: int, cfg: Any) -> Callable[[], StudyOutcome]:
    """An Optuna study of ``k`` trials (TPE + Hyperband), as one call."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runner = SegmentedRun(task)

    def study() -> StudyOutcome:
        sampler = optuna.samplers.TPESampler(seed=cfg.seed)
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=task.segments, reduction_factor=cfg.eta
        )
        # a fixed name: Hyperband puts a trial in a bracket by a hash of the study's name
        name = f"{task.name} K={k}" + ("" if task.parts == 1 else f" ({task.rungs})")
        st = optuna.create_study(
            study_name=name, direction="maximize", sampler=sampler, pruner=pruner
        )
        out = StudyOutcome(st, {}, [], [], [])

        def objective(trial: Any) -> float:
            lr = trial.suggest_float("learning_rate", cfg.lr_min, cfg.lr_max, log=True)

            def report(segment: int, acc: float) -> bool:
                trial.report(acc, segment)
                return trial.should_prune()

            params, accs, events = runner.run(lr, report)
            out.segments_run.append(len(accs))
            out.compiles.append({part: ev.compiles for part, ev in events.items()})
            out.compile_s.append(sum(sum(ev.totals.values()) for ev in events.values()))
            if len(accs) < task.segments:
                raise optuna.TrialPruned()
            out.finals[trial.number] = params
            return max(accs)

        st.optimize(objective, n_trials=k)
        return out

    study.runner = runner  # type: ignore[attr-defined]  # its programs, for the cross-check
    return study


def trial_compiles(out: StudyOutcome) -> dict[str, Any]:
    """XLA compiles of a study's trial 0 and of all later trials, per part of a trial."""
    later = {part: sum(c[part] for c in out.compiles[1:]) for part in COMPILE_PARTS}
    return {
        "trial_0": out.compiles[0],
        "trial_0_compile_s": out.compile_s[0],
        "later_trials": later,
        "later_trials_count": len(out.compiles) - 1,
        "later_trials_compile_s": sum(out.compile_s[1:]),
    }


def optuna_outcome(task: Task, out: StudyOutcome) -> dict[str, Any]:
    import optuna

    done = [t for t in out.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(done, key=lambda t: t.value)  # study.best_trial, without its warnings
    reported = [v for t in out.study.trials for v in t.intermediate_values.values()]
    return {
        "best_validation": float(best.value),
        "learning_rate": float(best.params["learning_rate"]),
        "test_accuracy": float(task.problem.metric(out.finals[best.number], task.test)),
        "member_steps": int(sum(out.segments_run)) * task.seg_steps,
        "segments_run": int(sum(out.segments_run)),
        "trials_pruned": len(out.study.trials) - len(done),
        "trials_complete": len(done),
        "best_validation_any_trial": float(max(reported)),
        "xla_compiles_in_trials": trial_compiles(out),
    }


# --------------------------------------------------------------------------- one problem


def recorded(fn: Callable[[], Any], outputs: list[Any]) -> Callable[[], Any]:
    """``fn`` that also appends each output to ``outputs`` (the first is the cold call's)."""

    def call() -> Any:
        outputs.append(fn())
        return outputs[-1]

    return call


def pruned_name(method: str, k: int, task: Task) -> str:
    return f"{method} K={k} ({task.rungs})"


def bench_problem(task: Task, cfg: Any, log: R.Log) -> dict[str, Any]:
    pruned = [HALVING] * has_halving() + [OPTUNA] * has_optuna()
    fine = task.refined(cfg.fine)
    tasks = [task] + ([fine] if fine is not None else [])
    variants, studies, task_of, runners = [], {}, {}, {}
    for k in cfg.ks:
        lrs, ref = learning_rates(cfg, k), f"{GRID} K={k}"
        info = {"method": GRID, "k": k, "granularity": COARSE, "segments": task.segments,
                "segment_steps": task.seg_steps, "rungs": None}  # fmt: skip
        variants.append(T.Variant(ref, sweep_call(task, lrs, None), work=k, info=info))
        task_of[ref] = task
        for t in tasks:
            for method in pruned:
                name = pruned_name(method, k, t)
                if method == OPTUNA:
                    studies[name] = []  # every call's outcome: the first one compiled
                    study = optuna_call(t, k, cfg)
                    runners.setdefault(t.granularity, study.runner)
                    call = recorded(study, studies[name])
                else:
                    call = sweep_call(t, lrs, cfg.eta)
                info = {"method": method, "k": k, "granularity": t.granularity,
                        "segments": t.segments, "segment_steps": t.seg_steps,
                        "rungs": t.rungs}  # fmt: skip
                variants.append(T.Variant(name, call, work=k, ref=ref, info=info))
                task_of[name] = t
    rows, outs = T.measure(variants, repeats=cfg.repeats, warmup=0, per_call=("s_per_call", 1.0))
    log(f"{task.name}: timings done")
    for v in variants:
        row, out, t = rows[v.name], outs[v.name], task_of[v.name]
        if v.info["method"] == OPTUNA:
            row.update(optuna_outcome(t, out))
            first = studies[v.name][0]  # the first (cold) study: its trials' compiles
            row["first_call_xla_compiles_in_trials"] = trial_compiles(first)
            row["segments_run_each_call"] = [sum(st.segments_run) for st in studies[v.name]]
        else:
            row.update(sweep_outcome(t, out, v.work * t.steps))
        grid = rows[f"{GRID} K={v.info['k']}"]
        row["member_steps_over_grid"] = row["member_steps"] / grid["member_steps"]
        row["warm_s"] = row["time_s"]["median"]
        row["first_call_s"] = row["compile"]["wall_s"]
        row["compile_s"] = sum(
            row["compile"][key] for key in ("trace_s", "lower_s", "xla_compile_s")
        )
    grid0 = outs[f"{GRID} K={cfg.ks[0]}"]
    return {
        **task.describe(),
        "fine_segments": None if fine is None else fine.segments,
        "fine_segment_steps": None if fine is None else fine.seg_steps,
        "learning_rates": f"geomspace({cfg.lr_min:g}, {cfg.lr_max:g}, K), float32 "
        "(Optuna: log-uniform over the same range)",
        "methods": [GRID] + pruned,
        "variants": rows,
        "oracle_test_accuracy": {str(k): grid_oracle(task, outs[f"{GRID} K={k}"]) for k in cfg.ks},
        "grid_fine_evaluations": grid_fine_evaluations(fine, cfg, log),
        "goals": goals(rows, cfg.ks),
        "check": cross_check(runners.get(COARSE) or SegmentedRun(task), grid0),
        "check_fine": None
        if fine is None
        else cross_check(runners.get(FINE) or SegmentedRun(fine), grid0),
    }


def grid_oracle(task: Task, res: Any) -> dict[str, float]:
    """The best test accuracy over the grid's final params (what no method may look at)."""
    accs = jax.vmap(task.problem.metric, in_axes=(0, None))(res.params, task.test)
    i = int(np.argmax(np.asarray(accs)))
    return {"test_accuracy": float(accs[i]), "learning_rate": float(res.learning_rates[i])}


def grid_fine_evaluations(fine: Task | None, cfg: Any, log: R.Log) -> dict[str, Any]:
    """The grid's best validation accuracy when evaluated every fine segment (one untimed
    call per K): the reference the fine rows' best validation accuracy can reach."""
    out: dict[str, Any] = {}
    for k in cfg.ks if fine is not None and cfg.grid_fine_evals else ():
        res = sweep_call(fine, learning_rates(cfg, k), None)()
        (i,) = res.best_index
        out[str(k)] = {
            "eval_every": fine.seg_steps,
            "best_validation": float(res.best_evals[i]),
            "learning_rate": float(res.learning_rates[i]),
        }
    if out:
        log(f"{fine.name}: grid evaluated every fine segment done")
    return out


def cross_check(runner: SegmentedRun, res: Any) -> dict[str, Any]:
    """An Optuna-style segmented run (coarse or fine; the Optuna rows' own programs where
    they ran) at the coarse grid's middle learning rate against that grid member: the same
    validation accuracies at the grid's evaluations (every ``parts``-th of a fine run's),
    as the same init, shuffles and updates give."""
    task, i = runner.task, len(res.learning_rates) // 2
    _, accs, _ = runner.run(float(res.learning_rates[i]))
    compared = accs[task.parts - 1 :: task.parts]
    diff = np.max(np.abs(np.asarray(compared) - res.evals[i]))
    return {
        "learning_rate": float(res.learning_rates[i]),
        "segment_steps": task.seg_steps,
        "max_abs_diff_validation_accuracy": float(diff),
        "grid_member_validation": [float(x) for x in res.evals[i]],
        "segmented_run_validation": accs,
    }


# (halving granularity, Optuna granularity): the equal ones first, the like-for-like pairings
PAIRINGS = ((FINE, FINE), (COARSE, COARSE), (FINE, COARSE), (COARSE, FINE))


def goals(rows: dict[str, dict[str, Any]], ks: list[int]) -> dict[str, Any]:
    """The issue's goals, where the rows they need were measured: halving against the
    grid per halving granularity; Optuna against the grid per Optuna granularity; Optuna
    against halving per pairing of granularities."""
    by = {(r["method"], r["k"], r["granularity"]): r for r in rows.values()}
    out: dict[str, Any] = {}
    for k in ks:
        grid = by[(GRID, k, COARSE)]
        g: dict[str, Any] = {"halving_vs_grid": {}, "optuna_vs_grid": {}, "optuna_vs_halving": []}
        for gran in (COARSE, FINE):
            halv, opt = by.get((HALVING, k, gran)), by.get((OPTUNA, k, gran))
            if halv is not None:
                h = {
                    "rungs": halv["rungs"],
                    "minus_grid_best_validation_points": 100
                    * (halv["best_validation"] - grid["best_validation"]),
                    "member_steps_over_grid": halv["member_steps_over_grid"],
                    "warm_time_over_grid": halv["ratio_to_" + f"{GRID} K={k}"],
                    "first_call_over_grid": halv["first_call_s"] / grid["first_call_s"],
                }
                h["goal_met"] = bool(
                    h["minus_grid_best_validation_points"] >= -0.5
                    and h["member_steps_over_grid"] <= 0.40
                    and h["warm_time_over_grid"]["median_over_median"] <= 0.50
                )
                g["halving_vs_grid"][gran] = h
            if opt is not None:
                g["optuna_vs_grid"][gran] = {
                    "rungs": opt["rungs"],
                    "optuna_over_grid_warm_time": opt["ratio_to_" + f"{GRID} K={k}"],
                    "optuna_over_grid_first_call": opt["first_call_s"] / grid["first_call_s"],
                    "grid_minus_optuna_best_validation_points": 100
                    * (grid["best_validation"] - opt["best_validation"]),
                }
        for hg, og in PAIRINGS:
            halv, opt = by.get((HALVING, k, hg)), by.get((OPTUNA, k, og))
            if halv is None or opt is None:
                continue
            p = {
                "halving": hg,
                "optuna": og,
                "halving_rungs": halv["rungs"],
                "optuna_rungs": opt["rungs"],
                "like_for_like": hg == og,
                "optuna_over_halving_warm_time": T.paired_ratio(
                    opt["time_s"]["samples"], halv["time_s"]["samples"]
                ),
                "optuna_over_halving_first_call": opt["first_call_s"] / halv["first_call_s"],
                "halving_minus_optuna_best_validation_points": 100
                * (halv["best_validation"] - opt["best_validation"]),
            }
            p["goal_met"] = bool(
                p["optuna_over_halving_warm_time"]["median_over_median"] >= 3.0
                and p["halving_minus_optuna_best_validation_points"] >= 0.0
            )
            g["optuna_vs_halving"].append(p)
        out[str(k)] = g
    return out


def run(quick: bool = True, **options: Any) -> dict[str, Any]:
    cfg = R.settings(PARAMS, quick, options)
    record, log = R.begin(
        "tuning",
        cfg,
        **R.WHOLE_CALLS,
        dtype="float32",
        jax_enable_x64=bool(jax.config.jax_enable_x64),
        optuna=_version("optuna") if has_optuna() else None,
        successive_halving=has_halving(),
    )
    record["problems"] = {}
    for name in cfg.problems:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jol.GridEdgeWarning)
            record["problems"][name] = bench_problem(make_task(name, cfg), cfg, log)
    return R.finish(record)


def _version(package: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------- report


def met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def steps_text(n: int) -> str:
    return f"{n} step" + "s" * (n != 1)


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


COLUMNS = [
    ("method", "name", None),
    ("best val acc %", "best_validation", pct),
    ("chosen lr", "learning_rate", ".3g"),
    ("test acc % (chosen)", "test_accuracy", pct),
    ("member-steps", "member_steps", ",d"),
    ("/ grid", "member_steps_over_grid", ".2f"),
    ("1st call s (compile incl.)", "first_call_s", ".2f"),
    ("compile s", "compile_s", ".2f"),
    ("XLA compiles (1st call)", "compile.xla_compiles", "d"),
    ("warm s (median)", "warm_s", ".2f"),
    (
        "warm / grid (paired q25-q75)",
        lambda r: None if r["method"] == GRID else r["ratio_to_" + f"{GRID} K={r['k']}"],
        R.ratio,
    ),  # fmt: skip
    ("pruned", lambda r: r.get("trials_pruned", r.get("members_pruned")), "d"),
]
ABOUT = (
    "Each method tunes adam's learning rate on the validation accuracy over the same range "
    "and budget; the chosen configuration's final params are then scored on the test set. "
    "'1st call s' is a method's first call (trace + compile + run; its own loss and metric "
    "function objects, so no other method's programs help it); 'compile s' the JAX compile "
    "events (trace + lower + XLA) inside it; 'warm s' the median of warm calls, the methods "
    "interleaved. An Optuna call is a whole study (sampling, pruning and the trials' host "
    "round trips included). member-steps: updates actually run, summed over members or trials."
)


HALVING_GOAL_COLUMNS = [
    ("K", "k", "d"),
    ("halving", "rungs", None),
    ("best val acc - grid's (points; goal >= -0.5)", "minus_grid_best_validation_points", "+.2f"),
    ("member-steps / grid (goal <= 0.40)", "member_steps_over_grid", ".2f"),
    ("warm / grid (goal <= 0.50)", "warm_time_over_grid", R.ratio),
    ("1st call / grid", "first_call_over_grid", ".2f"),
    ("goal", lambda r: met(r["goal_met"]), None),
]
OPTUNA_GOAL_COLUMNS = [
    ("K", "k", "d"),
    ("halving", "halving_rungs", None),
    ("Optuna", "optuna_rungs", None),
    ("like-for-like", lambda r: "yes" if r["like_for_like"] else "no", None),
    (
        "Optuna warm / halving warm (paired q25-q75; goal >= 3)",
        "optuna_over_halving_warm_time",
        R.ratio,
    ),
    ("Optuna 1st call / halving's", "optuna_over_halving_first_call", ".2f"),
    (
        "halving - Optuna best val acc (points; goal >= +0.00)",
        "halving_minus_optuna_best_validation_points",
        "+.2f",
    ),
    ("goal (stated at K=81)", lambda r: met(r["goal_met"]), None),
]


def problem_notes(sec: dict[str, Any], record: dict[str, Any]) -> list[str]:
    notes = []
    for k, o in sec["oracle_test_accuracy"].items():
        notes.append(
            f"* Best test accuracy over the K={k} grid's final params (hindsight, no method "
            f"may use it): {pct(o['test_accuracy'])}% at lr {o['learning_rate']:.3g}."
        )
    for k, f in sec.get("grid_fine_evaluations", {}).items():
        grid = sec["variants"][f"{GRID} K={k}"]
        notes.append(
            f"* The K={k} grid evaluated every {f['eval_every']} steps (one untimed call): best "
            f"val acc {pct(f['best_validation'])}% at lr {f['learning_rate']:.3g} (evaluated "
            f"every {sec['segment_steps']}: {pct(grid['best_validation'])}%)."
        )
    for k, g in sec["goals"].items():
        for o in g["optuna_vs_grid"].values():
            notes.append(
                f"* K={k}, Optuna ({o['rungs']}) over the grid: warm "
                f"x{R.ratio(o['optuna_over_grid_warm_time'])}, 1st call "
                f"x{o['optuna_over_grid_first_call']:.2f}; grid's best val acc minus Optuna's: "
                f"{o['grid_minus_optuna_best_validation_points']:+.2f} points."
            )
    for name, row in sec["variants"].items():
        tc = row.get("first_call_xla_compiles_in_trials")
        if tc:
            first = ", ".join(f"{part} {n}" for part, n in tc["trial_0"].items())
            later = ", ".join(f"{part} {n}" for part, n in tc["later_trials"].items())
            notes.append(
                f"* {name}: XLA compiles in the first study: trial 0 {first} "
                f"({tc['trial_0_compile_s']:.2f} s); the {tc['later_trials_count']} later trials "
                f"{later}. {row['segments_run']} of {row['k'] * row['segments']} segments run, "
                f"{row['trials_complete']} trials complete."
            )
    if not record["config"].get("successive_halving"):
        notes.append(
            "* No halving rows: `jol.successive_halving` does not exist in this build (the "
            "rows appear when it does)."
        )
    if not record["config"].get("optuna"):
        notes.append("* No Optuna rows: optuna is not installed (`pip install jaxopt-lab[bench]`).")
    if sec.get("fine_segment_steps") is None:
        notes.append(
            f"* No fine rows: a segment of {sec['segment_steps']} steps does not split into "
            f"--fine {record['config'].get('fine')} equal parts."
        )
    for c in (sec["check"], sec.get("check_fine")):
        if c is None:
            continue
        notes.append(
            f"* Cross-check: an Optuna-style segmented run of {c['segment_steps']}-step segments "
            f"at lr {c['learning_rate']:.3g} against that grid member: max |validation accuracy "
            f"difference| {c['max_abs_diff_validation_accuracy']:.2g}."
        )
    return notes


def report(record: dict[str, Any]) -> list[Any]:
    blocks: list[Any] = [ABOUT]
    for name, sec in record["problems"].items():
        fine = sec.get("fine_segment_steps")
        if sec["batch_size"] is None:
            budget = (
                f"full batch ({sec['train_rows']} rows), {sec['steps']} adam steps, evaluated "
                f"every {sec['segment_steps']}"
            )
        else:
            budget = (
                f"batch {sec['batch_size']} ({sec['train_rows']} rows, {sec['segment_steps']} "
                f"steps/epoch), {sec['epochs']} epochs, evaluated every epoch"
            )
        if fine is not None:
            budget += f" (fine rows: every {steps_text(fine)})"
        blocks.append(
            R.Table(
                COLUMNS,
                R.named(sec["variants"]),
                title=f"{name}: {budget}",
                text=(
                    f"Learning rates {sec['learning_rates']}. Validation: "
                    f"{sec['validation_rows']} rows ({sec['validation_source']}); test: "
                    f"{sec['test_rows']} rows. {record['config']['repeats']} warm call(s) "
                    "per method. Halving and Optuna rows prune at rungs of one segment "
                    f"(coarse: {steps_text(sec['segment_steps'])}"
                    + (f"; fine: {steps_text(fine)}" if fine is not None else "")
                    + "), both evaluating / reporting every segment; the grid row evaluates "
                    "every coarse segment."
                ),
                notes=problem_notes(sec, record),
            )
        )
        g = sec["goals"]
        halving = [{"k": int(k), **h} for k, v in g.items() for h in v["halving_vs_grid"].values()]
        if halving:
            blocks.append(
                R.Table(
                    HALVING_GOAL_COLUMNS,
                    halving,
                    title=f"{name}: goal, halving against the grid",
                    n_left=2,
                    text="The grid's best validation accuracy is over its coarse evaluations.",
                )
            )
        pairs = [{"k": int(k), **p} for k, v in g.items() for p in v["optuna_vs_halving"]]
        if pairs:
            blocks.append(
                R.Table(
                    OPTUNA_GOAL_COLUMNS,
                    pairs,
                    title=f"{name}: goal, halving against Optuna (>= 3x less warm time, best val "
                    "acc >= Optuna's; stated at K=81)",
                    n_left=4,
                    text=(
                        "Each pairing of a halving granularity with an Optuna one. The "
                        "like-for-like pairings prune at the same granularity (fine/fine, "
                        "coarse/coarse); the others compare each method at a different setting."
                    ),
                )
            )
    return blocks


if __name__ == "__main__":
    R.cli(__spec__.name)
