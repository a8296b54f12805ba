"""Each figure renders to a real PNG and shows what it promises."""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_real_png
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

import jaxopt_lab as jol
from jaxopt_lab import plots

P = jol.problems


@functools.lru_cache(maxsize=None)
def _sweep(seeds=None):
    """Linear regression with SGD: the three largest of 8 learning rates diverge."""
    prob = P.linear_regression()
    return jol.sweep(jol.sgd, prob.loss, None, np.geomspace(1e-3, 1e3, 8), init_fn=prob.init_params,
                     data=prob.train, batch_size=16, epochs=2, seeds=seeds)  # fmt: skip


@pytest.mark.parametrize("seeds", [None, 3])
def test_lr_sensitivity_marks_diverged_members_and_the_best(tmp_path, seeds):
    res = _sweep(seeds)
    fig = plots.lr_sensitivity(res, path=tmp_path / "s.png")
    assert isinstance(fig, Figure)
    assert_real_png(tmp_path / "s.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    red = [ln for ln in ax.lines if ln.get_marker() == "x" and ln.get_color() == "tab:red"]
    assert len(red) == 1 and len(red[0].get_xdata()) == res.diverged.sum()
    np.testing.assert_allclose(sorted(set(red[0].get_xdata())), res.learning_rates[-3:])
    assert res.diverged[-3:].all() and not res.diverged[:-3].any()
    star = next(ln for ln in ax.lines if ln.get_marker() == "*")
    assert star.get_xdata()[0] == pytest.approx(res.best_learning_rate)
    assert len(ax.collections) == (1 if seeds else 0)  # the band over seeds


def test_loss_curves_of_a_sweep_are_its_best_members(tmp_path):
    res = _sweep()
    fig = plots.loss_curves(res, top=3, path=tmp_path / "c.png")
    assert_real_png(tmp_path / "c.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.lines) == 3
    # a mini-batch sweep ranks members by their mean loss over the last epoch
    per_epoch = res.losses.shape[-1] // res.config["epochs"]
    score = np.where(res.diverged, np.inf, res.losses[:, -per_epoch:].mean(axis=-1))
    best = res.learning_rates[np.argsort(score)[:3]]
    assert [ln.get_label() for ln in ax.lines] == [f"lr={lr:.3g}" for lr in best]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), res.losses[np.argmin(score)])


def test_loss_curves_smooth_over_a_window(tmp_path):
    noisy = np.abs(np.sin(np.arange(200.0))) + np.linspace(2, 1, 200)
    fig = plots.loss_curves({"noisy": noisy}, smooth=10, path=tmp_path / "m.png")
    raw, mean = fig.axes[0].lines
    assert mean.get_label() == "noisy" and len(mean.get_ydata()) == 191
    assert np.std(np.diff(mean.get_ydata())) < 0.2 * np.std(np.diff(raw.get_ydata()))
    assert_real_png(tmp_path / "m.png")


def test_contour_trajectories_draws_every_path_over_the_contours(tmp_path):
    f = P.rosenbrock()
    paths = {name: jol.trajectory(f.fn, f.x0, opt, 300) for name, opt in
             [("adam", jol.adam(0.02)), ("momentum", jol.sgd(1e-3, momentum=0.9))]}  # fmt: skip
    fig = plots.contour_trajectories(f.fn, paths, minimizers=f.minimizers, path=tmp_path / "t.png")
    assert_real_png(tmp_path / "t.png")
    ax = fig.axes[0]
    labelled = {ln.get_label(): ln for ln in ax.lines}
    np.testing.assert_array_equal(labelled["adam"].get_xdata(), np.asarray(paths["adam"])[:, 0])
    assert "minimizer" in labelled and len(ax.collections) >= 1  # the contour set
    x0, x1, y0, y1 = *ax.get_xlim(), *ax.get_ylim()
    for p in paths.values():  # the default box holds every path
        p = np.asarray(p)
        assert (
            x0 <= p[:, 0].min()
            and p[:, 0].max() <= x1
            and y0 <= p[:, 1].min()
            and p[:, 1].max() <= y1
        )


def test_learning_rate_effect_has_a_panel_per_learning_rate(tmp_path):
    f = P.quartic()
    lrs = [0.01, 0.1, 0.3]
    fig = plots.learning_rate_effect(f.fn, 2.0, lrs, steps=8, path=tmp_path / "e.png")
    assert_real_png(tmp_path / "e.png", min_size=(300, 600))
    assert len(fig.axes) == 3
    assert [ax.get_title().split(";")[0] for ax in fig.axes] == [f"lr = {lr:g}" for lr in lrs]
    # the iterates drawn on the first panel are gradient descent's, from x0 = 2
    path = np.asarray(jol.trajectory(lambda x: f.fn(x), jnp.asarray([2.0]), jol.sgd(0.01), 8))[:, 0]
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets()[:, 0], path, rtol=1e-6)


def test_figures_need_no_display():
    # Built on matplotlib.figure.Figure: no pyplot state is touched.
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.loss_curves({"a": np.linspace(1, 0.1, 10)})
    assert plt.get_fignums() == before
    assert to_rgba("tab:red")  # the diverged colour is a real colour


def test_figures_show_as_png_in_jupyter(tmp_path):
    # IPython displays an object by its _repr_png_; a plain Figure has none (without
    # pyplot's inline backend a notebook showed "<Figure size ...>")
    fig = plots.loss_curves({"a": np.linspace(1, 0.1, 10)})
    assert isinstance(fig, Figure)
    png = fig._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "shown.png").write_bytes(png)
    assert_real_png(tmp_path / "shown.png", min_size=(200, 300))


def test_a_diverged_path_is_left_out_and_the_rest_drawn(tmp_path):
    f = P.rosenbrock()
    paths = {
        "diverged": np.full((5, 2), np.nan),
        "fine": np.asarray(jol.trajectory(f.fn, f.x0, jol.adam(0.02), 50)),
    }
    fig = plots.contour_trajectories(f.fn, paths, path=tmp_path / "d.png")
    assert [ln.get_label() for ln in fig.axes[0].lines if not ln.get_label().startswith("_")] == [
        "fine"
    ]
    assert_real_png(tmp_path / "d.png")


# --------------------------------------------------------------------------------------
# Evaluations (validation curves) and the range test
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _evaluated(seeds=None):
    """Logistic regression with SGD, evaluated on its validation set every 4 of 12 steps;
    the largest of 4 learning rates diverges."""
    prob = P.logistic_regression()
    return jol.sweep(jol.sgd, prob.loss, None, [1e-2, 1.0, 10.0, 1e6], init_fn=prob.init_params,
                     data=prob.train, batch_size=54, epochs=3, seeds=seeds, eval_fn=prob.metric,
                     eval_data=prob.validation, eval_every=4, eval_mode="max",
                     divergence_threshold=1e3)  # fmt: skip


@pytest.mark.parametrize("seeds", [None, 2])
def test_lr_sensitivity_adds_a_validation_panel(tmp_path, seeds):
    res = _evaluated(seeds)
    assert res.diverged[-1].all() and not res.diverged[:-1].any()
    fig = plots.lr_sensitivity(res, path=tmp_path / "v.png", eval_label="best val accuracy")
    assert_real_png(tmp_path / "v.png")
    loss_ax, eval_ax = fig.axes
    assert eval_ax.get_ylabel() == "best val accuracy (higher is better)"
    line = eval_ax.lines[0]
    want = res.best_evals.mean(axis=-1) if seeds else res.best_evals
    np.testing.assert_allclose(line.get_ydata()[:-1], want[:-1], rtol=1e-6)
    assert np.isnan(line.get_ydata()[-1])  # the diverged learning rate is left out
    for ax in (loss_ax, eval_ax):  # the best, chosen on validation, is starred on both
        star = next(ln for ln in ax.lines if ln.get_marker() == "*")
        assert star.get_xdata()[0] == pytest.approx(res.best_learning_rate)
    assert len(eval_ax.collections) == (1 if seeds else 0)  # the band over seeds


def test_eval_curves_are_the_best_configurations_evaluations(tmp_path):
    res = _evaluated()
    fig = plots.eval_curves(res, top=2, path=tmp_path / "e.png", ylabel="val accuracy")
    assert_real_png(tmp_path / "e.png")
    ax = fig.axes[0]
    curves = [ln for ln in ax.lines if not ln.get_label().startswith("_")]
    best = res.ranking()[:2]
    assert [ln.get_label() for ln in curves] == [f"lr={res.learning_rates[i]:.3g}" for (i,) in best]
    np.testing.assert_array_equal(curves[0].get_xdata(), res.eval_steps)
    np.testing.assert_array_equal(curves[0].get_ydata(), res.evals[best[0]])
    # each curve's best evaluation is circled
    circles = [ln for ln in ax.lines if ln.get_marker() == "o"]
    assert len(circles) == 2 and circles[0].get_ydata()[0] == res.best_evals[best[0]]
    assert ax.get_ylabel() == "val accuracy (higher is better)"


def test_eval_curves_average_seeds_and_refuse_bad_input():
    res = _evaluated(2)
    ax = plots.eval_curves(res, top=1).axes[0]
    (i,) = res.ranking()[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), res.evals[i].mean(axis=0), rtol=1e-6)
    assert len(ax.collections) == 1  # the band over seeds
    with pytest.raises(jol.InputError, match="`result` has no evaluations"):
        plots.eval_curves(_sweep())
    with pytest.raises(TypeError, match="`result` must be a SweepResult"):
        plots.eval_curves({"a": [1, 2]})
    for top in (0, 1.5, True):
        with pytest.raises(jol.InputError, match="`top`"):
            plots.eval_curves(res, top=top)


@pytest.mark.parametrize("seeds", [1, 3])
def test_lr_find_draws_curves_suggestion_band_and_blowup(tmp_path, seeds):
    prob = P.logistic_regression()
    found = jol.lr_find(jol.sgd, lambda p: prob.loss(p, prob.train), None, 1e-3, 1e4, 60,
                        seeds=seeds, init_fn=prob.init_params, smoothing=0.7)  # fmt: skip
    assert (found.blowup_step >= 0).all()  # plain SGD blows up well before lr 1e4
    fig = plots.lr_find(found, path=tmp_path / "f.png", title="range test")
    assert_real_png(tmp_path / "f.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_title() == "range test"
    labelled = {ln.get_label(): ln for ln in ax.lines}
    np.testing.assert_array_equal(labelled[next(k for k in labelled if k.startswith("smoothed"))]
                                  .get_ydata(), found.smoothed[0])  # fmt: skip
    suggestion = labelled[f"suggestion {found.suggestion:.3g}"]
    assert suggestion.get_xdata()[0] == found.suggestion
    crosses = labelled[f"blow-up ({seeds})"]
    np.testing.assert_allclose(crosses.get_xdata(), found.blowup_lr)
    # the band of the seeds' suggestions, when they differ
    low, high = found.spread
    assert len(ax.patches) == (1 if seeds > 1 and high > low else 0)
    # framed on the losses before the blow-ups
    before = np.concatenate(
        [row[:stop] for row, stop in zip(found.losses, found.blowup_step, strict=True)]
    )
    assert ax.get_ylim()[1] == pytest.approx(before.max() * 1.3, rel=1e-6)
    with pytest.raises(TypeError, match="`result` must be an LRFindResult"):
        plots.lr_find(_sweep())


def test_pruned_members_are_drawn_up_to_their_rung(tmp_path):
    rosen = P.rosenbrock()
    res = jol.sweep(jol.adam, rosen.fn, rosen.x0, np.logspace(-4, -1, 9), 36, eval_fn=rosen.fn,
                    prune=jol.successive_halving(eta=3, min_steps=4))  # fmt: skip
    fig = plots.loss_curves(res, top=4, path=tmp_path / "c.png")
    assert_real_png(tmp_path / "c.png")
    ax = fig.axes[0]
    labels = [ln.get_label() for ln in ax.lines if not ln.get_label().startswith("_")]
    ranked = res.ranking()[:4]
    pruned = [res.pruned_at[i] for i in ranked]
    assert pruned[0] == -1 and pruned[-1] >= 0  # the survivor first, the rest by rung
    assert [lab.endswith(f"(pruned at {p})") for lab, p in zip(labels, pruned, strict=True)] == [
        p >= 0 for p in pruned
    ]
    stops = [ln for ln in ax.lines if ln.get_marker() == "x"]
    assert len(stops) == sum(p >= 0 for p in pruned)
    assert sorted(int(ln.get_xdata()[0]) for ln in stops) == sorted(p - 1 for p in pruned if p >= 0)
    fig = plots.lr_sensitivity(res, path=tmp_path / "s.png")
    for ax in fig.axes:  # the loss panel and the evaluation panel
        ring = next(ln for ln in ax.lines if ln.get_label().startswith("pruned at a rung"))
        assert len(ring.get_xdata()) == (res.pruned_at >= 0).sum()
    fig = plots.eval_curves(res, top=3)
    assert sum("(pruned at" in ln.get_label() for ln in fig.axes[0].lines) == 2
