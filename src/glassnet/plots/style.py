"""One look for every figure: the Agg backend (files only) and shared colours and sizes."""

import matplotlib

matplotlib.use("Agg")  # files only; no display needed (and none on servers or CI)
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"train": "#1f77b4", "test": "#ff7f0e", "fit": "#d62728", "gap": "#cccccc"}
plt.rcParams.update(
    {
        "figure.dpi": 100,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)

__all__ = ["STYLE", "plt"]
