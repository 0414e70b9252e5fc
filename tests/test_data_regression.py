"""The regression CSV reader, the embedded generator and the data sources."""

import numpy as np
import pytest

from glassnet.data import find_gaps, generate_gapped, load_regression, read_xy_csv
from glassnet.data.regression import GENERATED_GAPS, true_function
from glassnet.errors import UserError

from .conftest import SHARED


def test_reads_header_and_headerless(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("input,label\n1.5,2\n-3,4e-1\n")
    b = tmp_path / "b.csv"
    b.write_text("1.5,2\n-3,0.4\n")
    for p in (a, b):
        x, y = read_xy_csv(p)
        np.testing.assert_array_equal(x, [1.5, -3.0])
        np.testing.assert_array_equal(y, [2.0, 0.4])


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty"),
        ("\n\n", "empty"),
        ("x,y\n1,2\n", "header is 'x,y'"),
        ("input,label\n", "no data rows"),
        ("input,label\n1,2\n3,abc\n", "line 3: non-numeric"),
        ("input,label\n1,2\n3,nan\n", "line 3: NaN or infinite"),
        ("input,label\n1,inf\n", "line 2: NaN or infinite"),
        ("input,label\n1,2,3\n", "line 2: expected 2 columns"),
    ],
)
def test_bad_csv_names_file_and_problem(tmp_path, content, message):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(UserError, match=message) as e:
        read_xy_csv(p, "--train")
    assert "--train" in str(e.value) and "bad.csv" in str(e.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_xy_csv(tmp_path / "nope.csv")
    with pytest.raises(UserError, match="is a folder"):
        read_xy_csv(tmp_path)


def test_unreadable_file(tmp_path):
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(UserError, match="bin.csv"):
        read_xy_csv(p)


def test_generator_has_gaps_and_noise_free_test_grid():
    d = generate_gapped(n_train=100, n_test=50, noise=0.4, seed=0)
    assert d.generated and len(d.x_train) == 100 and len(d.x_test) == 50
    for lo, hi in GENERATED_GAPS:
        assert not np.any((d.x_train >= lo) & (d.x_train <= hi))
    np.testing.assert_allclose(d.y_test, true_function(d.x_test))
    resid = d.y_train - true_function(d.x_train)
    assert 0.25 < resid.std() < 0.55  # noise level as documented (sigma 0.4)
    again = generate_gapped(n_train=100, n_test=50, noise=0.4, seed=0)
    np.testing.assert_array_equal(d.x_train, again.x_train)


def test_find_gaps_recovers_generated_gaps():
    d = generate_gapped()
    gaps = find_gaps(d.x_train)
    assert len(gaps) == 2
    for (lo, hi), (glo, ghi) in zip(gaps, GENERATED_GAPS):
        assert lo <= glo and hi >= ghi


def test_sources_order(tmp_path, monkeypatch, small_csvs):
    monkeypatch.delenv("GLASSNET_DATA", raising=False)
    assert load_regression().generated
    with pytest.raises(UserError, match="^train and test must be given together$"):
        load_regression(train=small_csvs[0])
    with pytest.raises(UserError, match="expected regression/train_data.csv"):
        load_regression(data_dir=tmp_path)
    monkeypatch.setenv("GLASSNET_DATA", str(tmp_path / "missing"))
    with pytest.raises(UserError, match="GLASSNET_DATA"):
        load_regression()


@pytest.mark.skipif(not (SHARED / "regression").exists(), reason="no shared datasets folder")
def test_reads_the_study_data():
    d = load_regression(data_dir=SHARED)
    assert len(d.x_train) == 100 and len(d.x_test) == 100 and not d.generated
    assert len(find_gaps(d.x_train)) == 2


def test_read_inputs_for_predict(tmp_path):
    from glassnet.data.regression import read_inputs

    one = tmp_path / "x.csv"
    one.write_text("x\n0.5\n-1e1\n")
    np.testing.assert_array_equal(read_inputs(one), [0.5, -10.0])
    two = tmp_path / "xy.csv"
    two.write_text("input,label\n1,2\n3,4\n")
    np.testing.assert_array_equal(read_inputs(two), [1.0, 3.0])
    bad = tmp_path / "bad.csv"
    bad.write_text("0.5\nabc\n")
    with pytest.raises(UserError, match="--input .*bad.csv, line 2: not a number"):
        read_inputs(bad, "--input")
    with pytest.raises(UserError, match="file not found"):
        read_inputs(tmp_path / "none.csv")
