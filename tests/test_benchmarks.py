"""The benchmarks run: each script's smoke mode, so a change that breaks one fails make test."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_csv

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str) -> None:
    """A benchmark's ``main(args)``, in this process: the processes it starts itself (a glassnet
    command, a worker per arm) are still started, but the test pays no interpreter for it."""
    sys.path.insert(0, str(BENCH))  # its own imports: _common, commands
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{Path(script).stem}", BENCH / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main(list(args))
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.slow
def test_regression_quality_smoke(tmp_path):
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(-3, 3, 30))
    (tmp_path / "data" / "regression").mkdir(parents=True)
    write_csv(tmp_path / "data" / "regression" / "train_data.csv", x, np.sin(x))
    write_csv(tmp_path / "data" / "regression" / "test_data.csv", x, np.sin(x))
    out = tmp_path / "rq.json"
    _run("regression_quality.py", "--smoke", "--study-data", str(tmp_path / "data"),
         "--set", "penalty=1e-3", "--set", "members=3", "--json", str(out))  # fmt: skip
    res = json.loads(out.read_text())
    assert res["smoke"] and len(res["rows"]) == 2
    # typed like the fields; a repeated --set adds to the earlier ones
    assert res["overrides"] == {"penalty": 1e-3, "members": 3}
    # the band read at other widths from the same runs: at the default's own, its coverage
    widths = res["median_coverage_by_band_scale"]
    assert widths["1.25"] == pytest.approx(res["median_band_coverage"])
    assert widths["1"] <= widths["1.25"] <= widths["1.5"] <= widths["2"]
    ratios = [r["default_test_mse"] / r["gp_test_mse"] for r in res["rows"]]
    assert [r["ratio_default_to_gp"] for r in res["rows"]] == pytest.approx(ratios)
    assert res["median_ratio"] == pytest.approx(float(np.median(ratios)))
    (row,) = res["study_data"]
    assert row["search"] == "deep-ensemble" and row["wall_seconds"] >= row["seconds"] > 0


def test_regression_stopping_smoke(tmp_path):
    out = tmp_path / "rs.json"
    _run("regression_stopping.py", "--smoke", "--json", str(out))
    res = json.loads(out.read_text())
    assert res["smoke"] and [r["function"] for r in res["rows"]] == ["poly_sine", "smooth_step"]
    assert [p["epoch"] for p in res["rows"][0]["points"]] == [20, 40]
    for r in res["rows"]:
        for p in r["points"]:
            assert p["ratio_to_gp"] == pytest.approx(p["test_mse"] / r["gp_test_mse"])
    # the rules pick per function: fixed, highest evidence, lowest test MSE (the bound)
    by_epoch = {e: [next(p for p in r["points"] if p["epoch"] == e) for r in res["rows"]]
                for e in (20, 40)}  # fmt: skip
    assert res["fixed"]["40"]["ratios"] == [p["ratio_to_gp"] for p in by_epoch[40]]
    best = [min(r["points"], key=lambda p: p["test_mse"])["ratio_to_gp"] for r in res["rows"]]
    assert res["oracle"]["ratios"] == best
    assert res["oracle"]["worst_ratio"] <= min(v["worst_ratio"] for v in res["fixed"].values())
    top = [max(r["points"], key=lambda p: p["evidence"])["epoch"] for r in res["rows"]]
    assert res["max_evidence"]["epochs"] == top


def test_results_md_is_rendered_from_its_json():
    # Every marked table in RESULTS.md is what the JSON renders to; a number edited by hand in
    # a rendered block is put back.
    sys.path.insert(0, str(BENCH))
    try:
        import render_results
    finally:
        sys.path.remove(str(BENCH))
    text = render_results.RESULTS.read_text()
    assert render_results.render(text) == text, "run benchmarks/render_results.py"
    blocks = list(render_results._BLOCK.finditer(text))
    assert {m.group(2) for m in blocks} == set(render_results.RENDERERS)
    body = blocks[0].group(3)
    edited = text.replace(body, body.replace("|", "| 9", 1), 1)
    assert edited != text and render_results.render(edited) == text


@pytest.mark.slow
def test_time_to_accuracy_smoke(tmp_path):
    # Easy digits (a bar per class): the arms cross the thresholds and stop early, glassnet's
    # through StopTraining (a plain KeyboardInterrupt would read as Ctrl-C and end the worker).
    from tests.test_data_images import make_idx_folder

    data = make_idx_folder(tmp_path / "bars", n_train=600, n_test=50, n_classes=10)
    out = tmp_path / "tta.json"
    _run("time_to_accuracy.py", "--smoke", "--data-dir", str(data), "--models", "mlp",
         "--seeds", "0", "--arms", "tutorial", "recipe", "glassnet", "--max-epochs", "3",
         "--json", str(out))  # fmt: skip
    res = json.loads(out.read_text())
    assert res["smoke"] and {r["arm"] for r in res["runs"]} == {"tutorial", "recipe", "glassnet"}
    run = {r["arm"]: r for r in res["runs"]}
    assert run["glassnet"]["time_to"]["0.98"] is not None  # reached, then stopped on purpose
    assert len(run["glassnet"]["epochs"]) <= 3
    # each speedup is the baseline's seconds to the threshold over glassnet's (one seed: its
    # own times), or, where the baseline never got there, its whole run over glassnet's time
    for s in res["speedups"]:
        th, base = str(s["threshold"]), run[s["over"]]
        slow = base["total_seconds"] if s["lower_bound"] else base["time_to"][th]
        assert s["speedup"] == pytest.approx(slow / run["glassnet"]["time_to"][th], abs=0.01)
    over_recipe = [s["speedup"] for s in res["speedups"] if s["over"] == "recipe"]
    assert res["speedup_min_vs_recipe"] == min(over_recipe)
    # an arm measured again replaces its own runs only, when runs are summarised from files
    again = tmp_path / "again.json"
    again.write_text(json.dumps({"command": "again", "runs": [{**run["glassnet"],
                                                              "total_seconds": 99.0}]}))
    merged = tmp_path / "merged.json"
    _run("time_to_accuracy.py", "--runs-from", str(out), str(again), "--seeds", "0",
         "--json", str(merged))  # fmt: skip
    runs = {r["arm"]: r for r in json.loads(merged.read_text())["runs"]}
    assert runs["glassnet"]["total_seconds"] == 99.0 and runs["tutorial"] == run["tutorial"]


@pytest.mark.slow
@pytest.mark.parametrize("script, flag", [("regression_search.py", "--out"),
                                          ("search_efficiency.py", "--json")])  # fmt: skip
def test_search_benchmarks_smoke(tmp_path, script, flag):
    out = tmp_path / "r.json"
    _run(script, "--smoke", flag, str(out), *(["--seeds", "0"] if "efficiency" in script else []))
    res = json.loads(out.read_text())
    assert res["smoke"] and res["rows"]
    for r in res["rows"]:
        assert np.isfinite(r["test_mse"]) and r["seconds"] > 0
    if "efficiency" not in script:
        return
    (seed,) = res["seeds"]
    arms = {r["arm"]: r for r in res["rows"]}
    seq, pop = arms["sequential, divergence stopping"], arms["PopulationSearchCV (random)"]
    tpe = arms[f"tpe, {res['headline_trials']} trials"]
    # the headline is the sequential arm's seconds over TPE's, both until a model returns. The
    # JSON rounds seconds to 0.01 and the ratio to 0.01; a smoke TPE takes a fraction of a
    # second, so the ratio of the rounded seconds is only known to within their rounding.
    lo = (seq["seconds"] - 0.005) / (tpe["seconds"] + 0.005) - 0.005
    hi = (seq["seconds"] + 0.005) / (tpe["seconds"] - 0.005) + 0.005
    assert lo <= res["speedup_vs_sequential"] <= hi
    assert seed["tpe_seconds"] == pytest.approx(tpe["seconds"], abs=0.01)  # the headline row's
    # the same candidates, folds and stopping: the sequential fits, counted one by one, train
    # the population's member-epochs
    assert seq["member_epochs"] == pop["member_epochs"]
    for r in res["rows"]:  # the same choice re-scores the same, whichever arm returned it
        same = [o for o in res["rows"] if o["params"] == r["params"]]
        assert {o["rescored_cv_mse"] for o in same} == {r["rescored_cv_mse"]}
    assert seed["tpe_as_good"] == (tpe["rescored_cv_mse"] <= seq["rescored_cv_mse"])


def test_commands_smoke(tmp_path):
    """A glassnet command run as a user runs it: its printed metrics land in the JSON."""
    from tests.test_data_images import make_idx_folder

    data = make_idx_folder(tmp_path / "bars", n_train=200, n_test=40, n_classes=4)
    out = tmp_path / "c.json"
    _run("commands.py", "--smoke", "--data-dir", str(data), "--json", str(out))
    res = json.loads(out.read_text())
    head = subprocess.run(["git", "-C", str(BENCH), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    assert res["commit"]["sha"] == head  # what the numbers were measured at
    (row,) = res["rows"]
    assert row["command"] == "glassnet classify --model mlp --epochs 1 --no-figures"
    assert 0.25 < row["test_accuracy"] <= 1.0 and row["best_epoch"] == 1  # 4 classes: chance 0.25
    assert row["wall_seconds"] > 0


def test_engine_ab_smoke(tmp_path):
    """Two source trees in turns; HEAD against the working tree, the same engine here."""
    out = tmp_path / "ab.json"
    _run("engine_ab.py", "--smoke", "--before", "HEAD", "--repeats", "1", "--json", str(out))
    res = json.loads(out.read_text())
    assert [r["tree"] for r in res["rows"]] == ["before", "after"]
    assert res["same_scores"]  # the same engine finds the same scores, to the digit
    for r in res["rows"]:
        assert r["rate"] == pytest.approx(r["member_epochs"] / r["seconds"])


def test_lenet_presets_smoke(tmp_path):
    """An ablation arm run as a user runs it, summarised per arm over its seeds."""
    from tests.test_data_images import make_idx_folder

    data = make_idx_folder(tmp_path / "bars", n_train=200, n_test=40, n_classes=4)
    out = tmp_path / "l.json"
    _run("lenet_presets.py", "--smoke", "--data-dir", str(data), "--json", str(out))
    res = json.loads(out.read_text())
    (row,) = res["rows"]
    assert row["command"] == ("glassnet classify --model lenet5 --epochs 1 --max-train 200 "
                              "--no-figures")
    assert row["seed"] == 0 and 0.25 < row["test_accuracy"] <= 1.0  # 4 classes: chance 0.25
    (arm,) = res["arms"]
    assert arm["median_test_accuracy"] == row["test_accuracy"] and arm["seeds"] == [0]
    assert arm["median_minutes"] == pytest.approx(row["wall_seconds"] / 60)


def test_augment_cost_smoke(tmp_path):
    """Each move's pass and cost against the plain pass, in the same run."""
    out = tmp_path / "a.json"
    _run("augment_cost.py", "--smoke", "--json", str(out))
    res = json.loads(out.read_text())
    plain, *moved = res["rows"]
    assert plain["settings"] is None and plain["cost_seconds"] == 0
    assert any(r["settings"].get("elastic") for r in moved)
    for r in moved:
        assert r["cost_seconds"] == pytest.approx(r["pass_seconds"] - plain["pass_seconds"])
        share = r["cost_seconds"] / res["training_epoch_seconds"]
        assert r["share_of_training_epoch"] == pytest.approx(share)
