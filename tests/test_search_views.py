"""The search seen: every search becomes an Optuna study, drawn by Optuna's own plots, with
pruned and failed trials shown as such; the report shows the four views."""

import base64
import io
import json
import math
import re

import matplotlib
import matplotlib.pyplot as plt
import pytest
from PIL import Image

from glassnet.cli import main
from glassnet.plots.search import SEARCH_FIGURES, search_figures
from glassnet.report import build_report
from glassnet.search.trials import VALUE, TrialRecord, as_study, records_from_cv_results

RECORDS = [
    TrialRecord({"lr": 1e-3, "momentum": 0.5}, 0.30, "complete", 1.0),
    TrialRecord({"lr": 1e-2, "momentum": 0.9}, 0.12, "complete", 2.0),
    TrialRecord({"lr": 3e-2, "momentum": 0.2}, 2.50, "pruned", 2.5, epochs=30),
    TrialRecord({"lr": 5e-2, "momentum": 0.8}, None, "failed", 3.0),
    TrialRecord({"lr": 2e-4, "momentum": 0.1}, 0.45, "complete", 4.0),
]


def test_records_become_a_study_with_states_scores_and_a_log_scale():
    study = as_study(RECORDS, "minimize")
    assert [t.number for t in study.trials] == list(range(5))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL",
                                                     "COMPLETE"]  # fmt: skip
    assert study.best_trial.params == {"lr": 1e-2, "momentum": 0.9}
    pruned = study.trials[2]
    assert pruned.intermediate_values == {30: 2.5} and pruned.user_attrs[VALUE] == 2.5
    lr, momentum = (study.trials[0].distributions[k] for k in ("lr", "momentum"))
    assert lr.log and (lr.low, lr.high) == (2e-4, 5e-2)  # spread over 250x: a log axis
    assert not momentum.log and (momentum.low, momentum.high) == (0.1, 0.9)


def test_cv_results_keep_draw_order_and_time_a_batched_search_as_one_step():
    import numpy as np

    params = [{"lr": 0.1, "optimizer__momentum": 0.5}, {"lr": 0.01, "optimizer__momentum": 0.9}]
    cv = {"params": params,
          "mean_test_score": np.array([-0.5, np.nan]), "mean_fit_time": np.array([1.0, 2.0]),
          "mean_score_time": np.array([0.0, 0.5])}  # fmt: skip
    seq = records_from_cv_results(cv, n_splits=3)
    assert [r.value for r in seq] == [0.5, None]
    assert [r.state for r in seq] == ["complete", "failed"]
    assert [r.seconds for r in seq] == [3.0, 10.5]  # fits one after another: 3 x 1.0, + 3 x 2.5
    assert seq[1].params == {"lr": 0.01, "momentum": 0.9}
    batched = records_from_cv_results(cv, n_splits=3, batch_seconds=4.0)
    assert [r.seconds for r in batched] == [4.0, 4.0]


def _saved():
    out = {}

    def save(name, fig):
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        out[name] = (buf.getvalue(), fig)

    return out, save


def test_four_views_drawn_and_the_notebook_left_as_it_was():
    before = dict(matplotlib.rcParams)
    open_before = plt.get_fignums()
    out, save = _saved()
    drawn = search_figures(save, as_study(RECORDS, "minimize"), "CV MSE", log_target=True)
    assert drawn == list(SEARCH_FIGURES) and set(out) == set(SEARCH_FIGURES)
    for png, _ in out.values():
        assert Image.open(io.BytesIO(png)).size[0] > 300
    assert dict(matplotlib.rcParams) == before  # Optuna's ggplot style stayed inside
    assert plt.get_fignums() == open_before  # every pyplot figure Optuna opened is closed
    history = out["search_history.png"][1]
    by_trial, by_seconds = history.axes[:2]
    labels = by_trial.get_legend_handles_labels()[1]
    assert "pruned" in labels and "failed (diverged)" in labels
    pruned = next(c for c in by_trial.collections if c.get_label() == "pruned")
    assert pruned.get_offsets().tolist() == [[2.0, 2.5]]  # trial 2, at the score it reached
    best = by_seconds.lines[0].get_ydata()
    assert list(best[1:]) == [0.30, 0.12, 0.12, 0.12]  # best so far, held to the last trial
    slices = out["search_slice.png"][1].axes
    lr_axis = next(a for a in slices if a.get_xlabel() == "lr")
    assert lr_axis.get_xscale() == "log" and lr_axis.get_xlim()[1] > 5e-2  # pruned lr shown


def test_a_trial_that_blew_up_does_not_flatten_the_scale():
    """A pruned trial at 1e14 is drawn at the ceiling, two decades above the worst complete
    trial (0.45), in the history and the slices; the colours of complete trials are never
    white on the grey background."""
    out, save = _saved()
    blown = [*RECORDS, TrialRecord({"lr": 4e-2, "momentum": 0.3}, 1e14, "pruned", 5.0, epochs=10)]
    search_figures(save, as_study(blown, "minimize"), "CV MSE", log_target=True)
    for ax in out["search_history.png"][1].axes[:2]:
        high = next(c for c in ax.collections if c.get_label() == "pruned, off the scale")
        assert high.get_offsets()[:, 1].tolist() == [pytest.approx(45.0)]
        assert ax.get_ylim()[1] < 1e3
    lr_axis = next(a for a in out["search_slice.png"][1].axes if a.get_xlabel() == "lr")
    high = next(c for c in lr_axis.collections if c.get_label() == "pruned, off the scale")
    assert high.get_offsets()[:, 1].tolist() == [pytest.approx(math.log10(0.45) + 2)]
    for name in ("search_slice.png", "search_parallel.png"):
        for ax in out[name][1].axes:
            for coll in ax.collections:
                if coll.get_array() is not None and len(coll.get_array()):
                    colours = coll.get_cmap()(coll.norm(coll.get_array()))
                    assert colours.reshape(-1, 4)[:, :3].min(axis=1).max() < 0.9  # no white


def test_views_that_need_variation_are_left_out():
    out, save = _saved()
    one = [TrialRecord({"lr": 0.01}, 0.2), TrialRecord({"lr": 0.1}, None, "failed")]
    assert search_figures(save, as_study(one, "minimize"), "CV MSE") == ["search_history.png"]
    flat = [TrialRecord({"lr": v}, 1.0) for v in (0.01, 0.1, 0.2)]  # every score the same
    names = search_figures(save, as_study(flat, "maximize"), "accuracy")
    assert "search_importance.png" not in names and "search_slice.png" in names
    assert search_figures(save, as_study([], "minimize"), "CV MSE") == []


@pytest.mark.slow
@pytest.mark.parametrize("search", ["population", "tpe"])
def test_report_shows_the_four_views_of_a_search(search, small_csvs, tmp_path, capsys):
    tr, te = small_csvs
    extra = {"population": ["--n-iter", "6", "--epoch-choices", "20", "40"],
             "tpe": ["--n-trials", "6", "--trial-batch", "3", "--max-epochs", "60"]}[search]
    args = ["regression", "--train", str(tr), "--test", str(te), "--hidden", "16", "8",
            "--cv", "3", "--search", search, *extra, "--quiet", "--json",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["n_candidates"] == 6
    for name in SEARCH_FIGURES:
        assert (tmp_path / "run" / name).is_file()
    page = build_report([tmp_path / "run"], tmp_path / "r.html").read_text()
    assert "<h3>The search</h3>" in page
    for name in SEARCH_FIGURES:  # each view embedded, decoding as an image, with its caption
        m = re.search(rf'<img src="data:image/png;base64,([^"]+)" alt="{name[:-4]}">', page)
        assert m, name
        Image.open(io.BytesIO(base64.b64decode(m.group(1)))).verify()
    assert "pruned trials are grey crosses" in page


def test_a_classifier_grid_is_drawn_too(tmp_path):
    from glassnet.estimators import ClassificationConfig
    from glassnet.experiments.classification import run_classification

    from .test_data_images import make_idx_folder

    data = make_idx_folder(tmp_path / "bars", n_train=150, n_test=30, n_classes=5)
    cfg = ClassificationConfig(data_dir=str(data), search="grid", hidden=(8,), batch_size=32,
                               grid_lr=(1e-3, 3e-2), grid_dropout=(0.0, 0.3), grid_epochs=(1, 2),
                               device="cpu")  # fmt: skip
    run_classification(cfg, out=tmp_path / "g")
    drawn = {p.name for p in (tmp_path / "g").glob("search_*.png")}
    assert {"search_history.png", "search_slice.png", "search_parallel.png"} <= drawn
