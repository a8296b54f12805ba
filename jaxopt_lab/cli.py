"""The ``jaxopt-lab`` command.

``jaxopt-lab optimizers``: every optimizer of the package on the 2-D Rosenbrock valley,
each over a log-spaced learning-rate grid trained as one vmapped, compiled program.
Prints a table (best learning rate and final loss per optimizer) and writes a plot of
final loss against learning rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

OPTIMIZERS = (
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "adamax",
    "nadam", "amsgrad", "adabelief", "radam", "lion", "lamb", "yogi", "sign_sgd",
)  # fmt: skip


def _make(name: str, lr):
    import jaxopt_lab as jol

    if name == "momentum":
        return jol.sgd(lr, momentum=0.9)
    if name == "nesterov":
        return jol.sgd(lr, momentum=0.9, nesterov=True)
    return getattr(jol, name)(lr)


def _rosenbrock(p):
    x, y = p[0], p[1]
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def lr_grid_final_losses(name: str, learning_rates, steps: int):
    """Final Rosenbrock loss from (-1.5, 2) for each learning rate, in one vmapped call."""
    import jax
    import jax.numpy as jnp

    import jaxopt_lab as jol

    start = jnp.array(START)

    def run(lr):
        opt = _make(name, lr)

        def step(carry, _):
            p, s = carry
            g = jax.grad(_rosenbrock)(p)
            u, s = opt.update(g, s, p)
            return (jol.apply_updates(p, u), s), None

        (p, _), _ = jax.lax.scan(step, (start, opt.init(start)), None, steps)
        return _rosenbrock(p)

    return jax.jit(jax.vmap(run))(learning_rates)


START = (-1.5, 2.0)
START_LOSS = _rosenbrock(START)  # 12.5
DIVERGED_FACTOR = 100.0  # a final loss above 100x the starting loss counts as diverged


def _optimizers_command(args: argparse.Namespace) -> int:
    import jax.numpy as jnp
    import numpy as np

    names = OPTIMIZERS if args.only is None else tuple(args.only.split(","))
    unknown = [n for n in names if n not in OPTIMIZERS]
    if unknown:
        print(f"jaxopt-lab: unknown optimizer(s) {unknown}; choose from {list(OPTIMIZERS)}")
        return 2
    if args.steps < 1 or args.num_lrs < 2:
        print("jaxopt-lab: --steps must be >= 1 and --num-lrs >= 2")
        return 2
    lrs = jnp.logspace(np.log10(args.lr_min), np.log10(args.lr_max), args.num_lrs)
    results = {}
    print(f"{len(lrs)} learning rates in [{args.lr_min:g}, {args.lr_max:g}], {args.steps} steps")
    print(f"{'optimizer':<10} {'best lr':>10} {'final loss':>12} {'diverged':>9} {'seconds':>8}")
    for name in names:
        t0 = time.perf_counter()
        losses = np.asarray(lr_grid_final_losses(name, lrs, args.steps))
        seconds = time.perf_counter() - t0
        finite = np.isfinite(losses) & (losses <= DIVERGED_FACTOR * START_LOSS)
        best = int(np.nanargmin(np.where(finite, losses, np.nan))) if finite.any() else 0
        results[name] = losses
        print(
            f"{name:<10} {float(lrs[best]):>10.3g} {losses[best]:>12.4g} "
            f"{int((~finite).sum()):>9d} {seconds:>8.2f}"
        )
    _plot(np.asarray(lrs), results, Path(args.out), args.steps)
    print(f"wrote {Path(args.out) / 'optimizers_rosenbrock.png'}")
    return 0


def _plot(lrs, results, out: Path, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colors = plt.get_cmap("tab20").colors
    top = DIVERGED_FACTOR * START_LOSS
    for i, (name, losses) in enumerate(results.items()):
        ok = np.isfinite(losses) & (losses <= top)
        style = dict(color=colors[i % len(colors)], linestyle=("-", "--")[i % 2])
        ax.plot(lrs, np.where(ok, losses, np.nan), marker=".", label=name, **style)
        ax.plot(lrs[~ok], np.full((~ok).sum(), top), "x", color=style["color"])
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="learning rate",
        ylabel=f"loss after {steps} steps",
        title="Rosenbrock from (-1.5, 2): final loss against learning rate (x: diverged)",
    )
    ax.axhline(START_LOSS, color="grey", linewidth=0.8, linestyle=":")
    ax.legend(ncol=2, fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(out / "optimizers_rosenbrock.png", dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxopt-lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "optimizers",
        help="every optimizer over a learning-rate grid on Rosenbrock (vmapped)",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps (default 1000)")
    p.add_argument("--lr-min", type=float, default=1e-4, help="smallest learning rate")
    p.add_argument("--lr-max", type=float, default=10.0, help="largest learning rate")
    p.add_argument("--num-lrs", type=int, default=25, help="grid size (log-spaced)")
    p.add_argument("--only", default=None, help="comma-separated optimizer names")
    p.add_argument("--out", default="out", help="folder for the plot (default ./out)")
    p.set_defaults(func=_optimizers_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
