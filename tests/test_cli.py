"""The `jaxopt-lab` command as a user runs it (a subprocess)."""

import subprocess
import sys

import matplotlib.image as mpimg
import numpy as np


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "jaxopt_lab.cli", *args],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )  # fmt: skip


def test_optimizers_prints_a_table_and_writes_a_real_plot(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("optimizers", "--only", "adam,sgd", "--steps", "200", "--num-lrs", "6",
                   "--out", str(out), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.strip()}
    assert {"adam", "sgd"} <= rows.keys()
    assert float(rows["adam"][2]) < 12.5  # below the starting loss
    image = mpimg.imread(out / "optimizers_rosenbrock.png")
    assert image.shape[0] > 300 and image.shape[1] > 500
    assert np.std(image[..., :3]) > 0.05  # not blank


def test_unknown_optimizer_is_a_clear_error(tmp_path):
    proc = run_cli("optimizers", "--only", "adamz", cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown optimizer" in proc.stdout and "Traceback" not in proc.stderr
