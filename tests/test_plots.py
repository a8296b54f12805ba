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
