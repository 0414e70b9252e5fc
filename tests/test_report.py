"""The HTML report and `reproduce`: content, escaping, and a real browser (headless Chromium)."""

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from glassnet.cli import main
from glassnet.estimators import ClassificationConfig
from glassnet.experiments import study
from glassnet.experiments.classification import run_classification
from glassnet.experiments.regression import run_regression
from glassnet.report import STUDY, build_report

from .test_data_images import make_idx_folder

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny regression run and a tiny LeNet-5 run with hostile class names."""
    from glassnet.estimators import RegressionConfig

    root = tmp_path_factory.mktemp("runs")
    data = make_idx_folder(root / "data", n_train=200, n_test=60, n_classes=3)
    (data / "classes.txt").write_text('<b>bold</b>\n"quote"\n&amp;\n')
    reg = run_regression(
        RegressionConfig(search="none", epochs=30, hidden=(16,), cv=2, device="cpu"), root / "reg"
    )
    cls = run_classification(
        ClassificationConfig(
            model="lenet5", data_dir=str(data), epochs=2, batch_size=32, device="cpu"
        ),
        root / "cnn",
    )
    return reg.run_dir, cls.run_dir


@pytest.mark.slow
def test_report_is_self_contained_and_escaped(runs, tmp_path):
    out = build_report(list(runs), tmp_path / "r.html", study=STUDY)
    text = out.read_text()
    assert "<b>bold</b>" not in text and "&lt;b&gt;bold&lt;/b&gt;" in text
    assert "&amp;amp;" in text  # the class name "&amp;" shown literally
    assert not re.search(r'src="(?!data:)', text)  # every image inline, nothing fetched
    pngs = [p for r in runs for p in Path(r).glob("*.png")]
    assert text.count("data:image/png;base64,") == len(pngs)
    for heading in (
        "Regression",
        "MNIST: LeNet-5",
        "Compared with the study",
        "Software",
        "conv1",
        "Configuration",
    ):
        assert heading in text
    cnn = text[text.index("MNIST: LeNet-5</h2>"):]  # the picture of what training saw: in Data
    assert cnn.index("<h3>Data</h3>") < cnn.index("What training saw") < cnn.index("Results</h3>")
    assert not list(tmp_path.glob(".*partial"))


def test_report_cli_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing"), "-o", str(tmp_path / "r.html")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    assert "config.json" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")
def test_report_in_headless_chromium(runs, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    report = build_report(list(runs), tmp_path / "report.html", study=STUDY)
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            widths = page.evaluate(
                "Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)"
            )
            sections = page.evaluate(
                "Array.from(document.querySelectorAll('section.run h2')).map(h => h.textContent)"
            )
            page.screenshot(path=str(tmp_path / "report.png"))
        finally:
            browser.close()
    assert errors == []
    assert widths and all(w > 0 for w in widths)
    assert len(sections) == 2 and "LeNet-5" in sections[1]
    assert (tmp_path / "report.png").stat().st_size > 10_000


@pytest.mark.slow
def test_reproduce_resumes_where_it_stopped(tmp_path, monkeypatch, capsys):
    """Ctrl-C in LeNet-5's second epoch: resume reads the finished experiments back, continues
    LeNet-5 from its checkpoint, and writes the three runs and the report."""
    import glassnet.checkpoints as ckpt
    from glassnet.models import LeNet5

    real = study.study_configs

    def tiny(data_dir, quick, seed=0, device="auto"):
        reg, mlp, lenet = real(data_dir, True, seed, "cpu")
        return (  # the resumed LeNet-5 draws its figures; the two read back need none
            replace(reg, n_iter=2, epoch_choices=(20,), hidden=(16,), max_epochs=40,
                    figures=False),
            replace(mlp, grid_epochs=(1,), max_train=300, hidden=(16,), figures=False),
            replace(lenet, epochs=2, max_train=300),
        )

    calls, stop = [], [True]
    for name in ("run_regression", "run_classification"):
        fn = getattr(study, name)

        def counted(cfg, out, progress, resume=False, _fn=fn):
            calls.append((getattr(cfg, "model", "regression"), resume))
            return _fn(cfg, out, progress, resume=resume)

        monkeypatch.setattr(study, name, counted)
    real_end = ckpt.Checkpointer.on_epoch_end

    def interrupt(self, net, **kw):
        real_end(self, net, **kw)
        if stop[0] and isinstance(net.module_, LeNet5) and len(net.history) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.Checkpointer, "on_epoch_end", interrupt)
    monkeypatch.setattr(study, "study_configs", tiny)
    monkeypatch.delenv("GLASSNET_DATA", raising=False)
    out = tmp_path / "study"
    assert main(["reproduce", "--quick", "--quiet", "--out", str(out)]) == 130
    assert f"glassnet resume {out}" in capsys.readouterr().err
    stop[0], calls[:] = False, []
    assert main(["resume", str(out), "--quiet"]) == 0
    assert calls == [("lenet5", True)]  # the three finished experiments are read back
    printed = capsys.readouterr().out
    assert "(study: 99.12%)" in printed and "5,000-image MNIST sample" in printed
    names = {p.name for p in out.iterdir()}
    assert {"regression", "mlp", "lenet5", "report.html"} <= names
    assert (out / "lenet5" / "metrics.json").exists()
    assert "96.39%" in (out / "report.html").read_text()  # the study's numbers beside ours
