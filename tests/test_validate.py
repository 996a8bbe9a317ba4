"""lamostdb validate: metrics on frames with known answers, the report files, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from conftest import SHIPPED_SPECTRA
from hypothesis import given, settings
from hypothesis import strategies as st

import lamostdb
from lamostdb.catalog.store import Catalog
from lamostdb.classify.stage import classify
from lamostdb.cli.main import main
from lamostdb.ingest.stage import ingest
from lamostdb.match.zwarning import ZWARNING_BITS
from lamostdb.sim import simulate_night
from lamostdb.validate import load_joined, summarize, validate_catalog, write_report
from lamostdb.validate import metrics as m

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def frame(rows: list[dict[str, Any]], **extra: list[Any]) -> pl.DataFrame:
    """A joined frame from short rows: (class, true_class) required, the rest defaulted."""
    defaults = {"snrg": 30.0, "subclass": "Non", "z": 0.0, "true_subclass": None, "true_z": 0.0}
    full = [{"specid": f"s{i}", **defaults, **r} for i, r in enumerate(rows)]
    schema = {
        "specid": pl.String,
        "snrg": pl.Float64,
        "class": pl.String,
        "subclass": pl.String,
        "z": pl.Float64,
        "true_class": pl.String,
        "true_subclass": pl.String,
        "true_z": pl.Float64,
    }
    df = pl.DataFrame(full, schema=schema)
    return df.with_columns(pl.Series(k, v) for k, v in extra.items())


# -- metrics ---------------------------------------------------------------------------------


def test_confusion_matrix_counts_and_unknown_truth_left_out() -> None:
    pairs = (
        [("STAR", "STAR")] * 5
        + [("STAR", "GALAXY")] * 2
        + [("GALAXY", "GALAXY")] * 3
        + [("GALAXY", "QSO")]
        + [("QSO", "QSO")] * 4
        + [("UNKNOWN", "GALAXY")] * 6
    )
    df = m.prepare(frame([{"true_class": t, "class": o} for t, o in pairs]))
    cm = m.confusion_matrix(df)
    assert cm["true"] == ["STAR", "GALAXY", "QSO"] and cm["predicted"] == ["STAR", "GALAXY", "QSO"]
    assert cm["counts"] == [[5, 2, 0], [0, 3, 1], [0, 0, 4]]
    s = summarize(frame([{"true_class": t, "class": o} for t, o in pairs]))
    assert s["n_labelled"] == 15 and s["n_unknown_truth"] == 6
    assert s["class_accuracy"] == pytest.approx(12 / 15)


def test_accuracy_per_snr_bin_uses_half_open_bins() -> None:
    snr = [0.5, 4.999, 5.0, 9.99, 10.0, 19.9, 20.0, 250.0, None]
    ok = [True, False, True, True, False, False, True, True, False]
    rows = [
        {"snrg": s, "true_class": "STAR", "class": "STAR" if c else "QSO"}
        for s, c in zip(snr, ok, strict=True)
    ]
    by_bin = {r["snr_bin"]: r for r in m.accuracy_by_snr(m.prepare(frame(rows)))}
    assert list(by_bin) == ["all", "<5", "5-10", "10-20", ">=20", "n/a"]
    assert [(by_bin[b]["n"], by_bin[b]["n_correct"]) for b in by_bin] == [
        (9, 5),
        (2, 1),
        (2, 2),
        (2, 0),
        (2, 2),
        (1, 0),
    ]
    assert by_bin["10-20"]["accuracy"] == 0.0 and by_bin["all"]["accuracy"] == 5 / 9


def test_empty_snr_bin_has_no_accuracy() -> None:
    rows = [{"snrg": 50.0, "true_class": "QSO", "class": "QSO"}]
    by_bin = {r["snr_bin"]: r for r in m.accuracy_by_snr(m.prepare(frame(rows)))}
    assert by_bin["<5"] == {"snr_bin": "<5", "n": 0, "n_correct": 0, "accuracy": None}
    assert "n/a" not in by_bin


def test_catastrophic_rule_at_its_limits() -> None:
    c = m.C_KMS
    rows = [
        {"true_class": "STAR", "class": "STAR", "z": 999.0 / c},  # 999 km/s: fine
        {"true_class": "STAR", "class": "STAR", "z": -1001.0 / c},  # 1001 km/s: bad z
        {
            "true_class": "GALAXY",
            "class": "GALAXY",
            "true_z": 0.5,
            "z": 0.5 + 0.0099 * 1.5,
        },  # dz/(1+z) 0.0099
        {
            "true_class": "QSO",
            "class": "QSO",
            "true_z": 2.0,
            "z": 2.0 - 0.0101 * 3.0,
        },  # dz/(1+z) -0.0101
        {"true_class": "QSO", "class": "GALAXY", "true_z": 2.0, "z": 2.0},  # wrong class
        {"true_class": "GALAXY", "class": "GALAXY", "true_z": None, "z": 3.0},  # class only
        {"true_class": "UNKNOWN", "class": "STAR", "true_z": None},  # not counted
    ]
    df = m.prepare(frame(rows))
    assert df["catastrophic"].to_list() == [False, True, False, True, True, False, False]
    cat = m.catastrophic_rate(df)
    assert (
        cat["n"],
        cat["n_catastrophic"],
        cat["n_wrong_class"],
        cat["n_bad_redshift"],
        cat["n_no_true_z"],
    ) == (6, 3, 1, 2, 1)
    assert cat["rate"] == 0.5 and "1000 km/s" in cat["definition"]


def test_subclass_offsets_on_the_ordinal_scale() -> None:
    pairs = [("G5", "G2"), ("K0", "G8"), ("dM2", "M0"), ("WD", "A0"), ("M", "M2"), ("F5", "F5")]
    rows = [
        {"true_class": "STAR", "class": "STAR", "subclass": o, "true_subclass": t} for o, t in pairs
    ]
    rows += [
        {"true_class": "STAR", "class": "GALAXY", "subclass": "Non", "true_subclass": "G2"},
        {"true_class": "GALAXY", "class": "GALAXY"},
    ]
    df = m.prepare(frame(rows))
    assert df["subclass_offset"].to_list() == [3, 2, 2, 180, None, 0, None, None]
    off = m.subclass_offsets(df)
    assert off["n_stars"] == 6 and off["n_compared"] == 5
    assert off["histogram"] == [
        {"offset": 0, "n": 1},
        {"offset": 2, "n": 2},
        {"offset": 3, "n": 1},
        {"offset": 180, "n": 1},
    ]
    assert off["median_offset"] == 2.0
    # "M" vs "M2" has a letter but no subtype: it counts for the letter, not the offset
    assert (off["n_letter_compared"], off["n_same_letter"]) == (6, 4)
    assert off["same_letter_fraction"] == pytest.approx(4 / 6)


def test_redshift_scatter_median_and_nmad_per_bin() -> None:
    c = m.C_KMS
    dv = [1.0, 2.0, 3.0, 4.0, 100.0]
    rows = [{"snrg": 30.0, "true_class": "STAR", "class": "STAR", "z": v / c} for v in dv]
    rows += [
        {"snrg": 3.0, "true_class": "STAR", "class": "STAR", "z": 7.0 / c},
        {"snrg": 3.0, "true_class": "STAR", "class": "GALAXY", "z": 0.3},  # wrong class
        {"snrg": 8.0, "true_class": "QSO", "class": "QSO", "true_z": 1.0, "z": 1.002},
        {"snrg": 8.0, "true_class": "QSO", "class": "QSO", "true_z": 3.0, "z": 3.0},
    ]
    r = m.redshift_scatter(m.prepare(frame(rows)))
    bins = {b["snr_bin"]: b for b in r["STAR"]["bins"]}
    assert r["STAR"]["quantity"] == "dv_kms" and r["QSO"]["quantity"] == "dz"
    assert bins[">=20"]["n"] == 5 and bins[">=20"]["median"] == pytest.approx(3.0)
    assert bins[">=20"]["nmad"] == pytest.approx(1.4826 * 1.0)
    assert bins["<5"]["n"] == 1 and bins["<5"]["median"] == pytest.approx(7.0)
    assert r["STAR"]["all"]["n"] == 6
    q = {b["snr_bin"]: b for b in r["QSO"]["bins"]}["5-10"]
    assert q["n"] == 2 and q["median"] == pytest.approx(0.0005)  # dz/(1+z): 0.001 and 0
    assert r["GALAXY"]["all"] == {"n": 0, "median": None, "nmad": None}


def pairwise_auc(score: list[float], positive: list[bool]) -> float | None:
    """Oracle: the fraction of (positive, negative) pairs ordered right, ties counting 1/2."""
    pos = [s for s, p in zip(score, positive, strict=True) if p]
    neg = [s for s, p in zip(score, positive, strict=True) if not p]
    if not pos or not neg:
        return None
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=40))
def test_roc_auc_equals_the_pairwise_count(pairs: list[tuple[int, bool]]) -> None:
    score = [float(s) for s, _ in pairs]
    positive = [p for _, p in pairs]
    expected = pairwise_auc(score, positive)
    got = m.roc_auc(score, positive)
    assert (got is None) == (expected is None)
    if expected is not None:
        assert got == pytest.approx(expected, abs=1e-12)


def test_roc_auc_of_perfect_reversed_and_random_scores() -> None:
    rng = np.random.default_rng(20261125)
    truth = rng.random(20_000) < 0.7
    assert m.roc_auc(truth.astype(float) + rng.random(truth.size) * 0.5, truth) == 1.0
    assert m.roc_auc(-truth.astype(float), truth) == 0.0
    assert m.roc_auc(rng.random(truth.size), truth) == pytest.approx(0.5, abs=0.015)
    with pytest.raises(ValueError, match="equal 1-D shapes"):
        m.roc_auc([0.1, 0.2], [True])


def test_conf_auc_says_undefined_when_one_group_is_empty() -> None:
    rows = [{"true_class": "STAR", "class": "STAR"}] * 3
    df = m.prepare(frame(rows, conf=[0.2, 0.5, 0.9]))
    assert m.conf_auc(df) == {
        "auc": None,
        "n_correct": 3,
        "n_wrong": 0,
        "note": "undefined: no wrong classes",
    }
    df = m.prepare(frame(rows, conf=[None, None, None]))
    assert m.conf_auc(df)["note"] == "undefined: no spectra with a Conf"


def test_reliability_bins_threshold_accuracy_and_auc() -> None:
    conf = [0.05, 0.05, 0.099, 0.15, 0.8, 0.85, 0.95, 1.0, None, 0.3]
    correct = [True, False, False, True, True, False, True, True, True, False]
    rows = [{"true_class": "STAR", "class": "STAR" if ok else "QSO"} for ok in correct]
    rows[-1]["true_class"] = "UNKNOWN"  # left out everywhere
    df = m.prepare(frame(rows, conf=conf))
    rel = m.reliability(df)
    assert len(rel) == 10 and rel[0]["conf_lo"] == 0.0 and rel[9]["conf_hi"] == 1.0
    assert [b["n"] for b in rel] == [3, 1, 0, 0, 0, 0, 0, 0, 2, 2]
    assert rel[0]["fraction_correct"] == pytest.approx(1 / 3)
    assert rel[0]["mean_conf"] == pytest.approx((0.05 + 0.05 + 0.099) / 3)
    assert rel[2]["fraction_correct"] is None and rel[2]["mean_conf"] is None
    assert (rel[8]["n_correct"], rel[9]["n_correct"]) == (1, 2)  # Conf = 1 in the last bin
    thr = m.conf_threshold_accuracy(df, 0.8)  # 0.8 itself passes
    assert (thr["n"], thr["n_correct"]) == (4, 3) and thr["coverage"] == 0.5
    auc = m.conf_auc(df)
    assert auc["auc"] == pytest.approx(pairwise_auc(conf[:8], correct[:8]))
    assert (auc["n_correct"], auc["n_wrong"]) == (5, 3)


def test_summary_without_optional_columns_says_so() -> None:
    s = summarize(frame([{"true_class": "STAR", "class": "STAR"}]))
    assert s["columns"] == {
        "conf": "missing",
        "conf_blue": "missing",
        "conf_red": "missing",
        "refined": "missing",
        "zwarning": "missing",
    }
    assert s["reliability"] is None and s["auc"] is None and s["zwarning"] is None
    assert s["accuracy_conf_ge_threshold"] is None
    s = summarize(frame([{"true_class": "STAR", "class": "STAR"}], conf=[None]))
    assert s["columns"]["conf"] == "all null" and s["reliability"] is None
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['true_z'\]"):
        summarize(frame([{"true_class": "STAR", "class": "STAR"}]).drop("true_z"))
    with pytest.raises(ValueError, match="conf_threshold"):
        summarize(frame([{"true_class": "STAR", "class": "STAR"}]), conf_threshold=1.5)


def test_zwarning_bits_are_counted_over_all_joined_spectra() -> None:
    sky, low = ZWARNING_BITS["SKY"], ZWARNING_BITS["LOW_CONFIDENCE"]
    rows = [
        {"true_class": "UNKNOWN", "class": "GALAXY"},
        {"true_class": "STAR", "class": "STAR"},
        {"true_class": "QSO", "class": "QSO"},
        {"true_class": "QSO", "class": "QSO"},
    ]
    zw = [1 << sky, (1 << sky) | (1 << low), 0, None]
    s = summarize(frame(rows, zwarning=zw))
    assert s["zwarning"]["n"] == 3 and s["zwarning"]["n_zero"] == 1
    assert s["zwarning"]["bits"]["SKY"] == 2 and s["zwarning"]["bits"]["LOW_CONFIDENCE"] == 1
    assert list(s["zwarning"]["bits"]) == list(ZWARNING_BITS)
    assert sum(s["zwarning"]["bits"].values()) == 3


# -- report files ----------------------------------------------------------------------------


def known_frame() -> pl.DataFrame:
    """40 spectra with Conf and ZWARNING: 30 right classes, 10 wrong, 2 UNKNOWN truths."""
    rng = np.random.default_rng(7)
    rows: list[dict[str, Any]] = []
    for i in range(40):
        true = ("STAR", "GALAXY", "QSO")[i % 3]
        ours = true if i < 30 else ("QSO" if true != "QSO" else "STAR")
        true_z = 0.0001 if true == "STAR" else 0.1 + 0.05 * i
        rows.append(
            {
                "snrg": float(2 + i),
                "true_class": true,
                "class": ours,
                "true_z": true_z,
                "z": true_z + rng.normal(0, 1e-4),
                "subclass": "G5" if ours == "STAR" else "Non",
                "true_subclass": "G3" if true == "STAR" else "Non",
            }
        )
    rows += [{"true_class": "UNKNOWN", "class": "GALAXY", "true_z": None}] * 2
    conf = np.r_[np.linspace(0.6, 1.0, 30), np.linspace(0.0, 0.5, 10), [0.1, 0.1]]
    return frame(rows, conf=conf.tolist(), zwarning=[0] * 30 + [1 << 8] * 10 + [1, 1])


def is_png(path: Path) -> bool:
    import matplotlib.image

    return path.read_bytes()[:8] == PNG_SIGNATURE and matplotlib.image.imread(path).ndim == 3


def test_report_files_hold_the_figures(tmp_path: Path) -> None:
    joined = known_frame()
    summary = summarize(joined, conf_threshold=0.8)
    ablation = [
        {"config": "full", "dataset": "sim", "n": 40, "class_accuracy": 0.75, "auc": 1.0},
        {
            "config": "no refinement",
            "dataset": "sim",
            "n": 40,
            "class_accuracy": 0.7,
            "auc": 0.93,
            "note": "extra|key",
        },
    ]
    rep = write_report(summary, joined, tmp_path / "rep", ablation=ablation)
    data = json.loads(rep.summary_json.read_text())
    assert {
        "n_joined",
        "n_labelled",
        "n_unknown_truth",
        "columns",
        "class_accuracy",
        "confusion",
        "accuracy_by_snr",
        "subclass_offsets",
        "redshift",
        "catastrophic",
        "reliability",
        "accuracy_conf_ge_threshold",
        "auc",
        "zwarning",
        "ablation",
        "figures",
        "snr_bins",
    } <= data.keys()
    assert data["n_labelled"] == 40 and data["n_unknown_truth"] == 2
    assert data["class_accuracy"] == 0.75 and data["auc"]["auc"] == 1.0
    assert data["zwarning"]["bits"]["LOW_CONFIDENCE"] == 10
    assert data["ablation"] == ablation
    assert set(rep.figures) == {"confusion", "subclass_offsets", "redshift_vs_snr", "reliability"}
    assert all(is_png(p) for p in rep.figures.values()) and rep.plot_note is None
    md = rep.report_md.read_text()
    for text in (
        "## Classes",
        "| STAR | 10 | 0 | 4 |",
        "Class accuracy: **0.750**",
        "## Stellar subclasses",
        "| 2 | 10 |",
        "## Redshifts",
        "## Catastrophic",
        "## Confidence",
        "**1.000**",
        "## ZWARNING",
        "| LOW_CONFIDENCE | 10 |",
        "## Ablation",
        "| config | dataset | n | class_accuracy | auc | note |",
        "| no refinement | sim | 40 | 0.7 | 0.93 | extra\\|key |",
    ):
        assert text in md, text
    for png in rep.figures.values():
        assert f"]({png.name})" in md


def test_report_without_matplotlib_writes_json_and_markdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rep"
    out.mkdir()
    (out / "confusion.png").write_bytes(b"an older report's figure")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    joined = known_frame().drop("conf")
    rep = write_report(summarize(joined), joined, out)
    assert rep.figures == {} and "pip install 'lamostdb[plot]'" in (rep.plot_note or "")
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "summary.json"]
    md = rep.report_md.read_text()
    assert "pip install 'lamostdb[plot]'" in md and ".png" not in md
    assert "`conf` (not a column)" in md and "no Conf AUC" in md
    assert json.loads(rep.summary_json.read_text())["reliability"] is None


# -- on a catalogue ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classified(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A simulated night (with sky fibres) plus the shipped real spectra, classified."""
    work = tmp_path_factory.mktemp("validate")
    simulate_night(work / "night", n=120, seed=41)
    cat = work / "cat"
    with Catalog.create(cat) as c:
        ingest(c, [work / "night" / "spectra", SHIPPED_SPECTRA], workers=1, progress=False)
        classify(c, workers=2, progress=False)
    return cat, work / "night" / "truth.parquet"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamostdb.cli", *args], capture_output=True, text=True, timeout=180
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cli_against_simulated_truth(classified: tuple[Path, Path], tmp_path: Path) -> None:
    cat, truth_path = classified
    r = run_cli("validate", str(cat), "--truth", str(truth_path), "--out", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    # the same figures straight from the tables
    truth = pl.read_parquet(truth_path)
    with lamostdb.open(cat) as c:
        res = c.sql("SELECT obsid, class, z, conf, zwarning FROM results")
    j = truth.join(res, on="obsid", suffix="_ours")
    lab = j.filter(pl.col("class") != "UNKNOWN")
    n_right = int((lab["class"] == lab["class_ours"]).sum())
    assert summary["n_joined"] == j.height == truth.height
    assert summary["n_unknown_truth"] == int((truth["class"] == "UNKNOWN").sum()) > 0
    assert summary["n_labelled"] == lab.height
    assert summary["class_accuracy"] == pytest.approx(n_right / lab.height)
    assert np.sum(summary["confusion"]["counts"]) == lab.height
    assert np.trace(np.asarray(summary["confusion"]["counts"])) == n_right
    stars = lab.filter((pl.col("class") == "STAR") & (pl.col("class_ours") == "STAR"))
    dv = ((stars["z_ours"] - stars["z"]) * m.C_KMS).to_numpy()
    assert summary["redshift"]["STAR"]["all"]["median"] == pytest.approx(np.median(dv))
    assert summary["inputs"]["truth"] == str(truth_path)
    right = (lab["class"] == lab["class_ours"]).to_list()
    assert summary["auc"]["auc"] == pytest.approx(pairwise_auc(lab["conf"].to_list(), right))
    assert sum(b["n"] for b in summary["reliability"]) == lab.height
    above = lab.filter(pl.col("conf") >= 0.8)
    assert summary["accuracy_conf_ge_threshold"]["n"] == above.height
    zw = j["zwarning"].to_numpy()
    assert summary["zwarning"]["bits"] == {
        name: int(((zw >> bit) & 1).sum()) for name, bit in ZWARNING_BITS.items()
    }
    assert summary["zwarning"]["bits"]["SKY"] == int((truth["fiber_type"] == "Sky").sum())
    lines = r.stdout.splitlines()
    assert lines[0] == (
        f"validated {lab.height} spectra against {truth_path} "
        f"({summary['n_unknown_truth']} with UNKNOWN truth left out)"
    )
    assert f"({n_right}/{lab.height})" in lines[1] and "catastrophic" in lines[1]
    auc = summary["auc"]
    auc_text = auc["note"] if auc["auc"] is None else f"{auc['auc']:.3f}"
    assert lines[2].startswith(f"Conf AUC {auc_text}; accuracy at Conf >= 0.8: ")
    assert lines[-1] == f"report: {tmp_path / 'r' / 'report.md'}"
    assert all(is_png(tmp_path / "r" / f"{n}.png") for n in summary["figures"])


def test_lamost_labels_as_truth(classified: tuple[Path, Path], tmp_path: Path) -> None:
    cat, _ = classified
    with lamostdb.open(cat) as c:
        joined = load_joined(c, "lamost")
        labels = c.sql(
            "SELECT s.lasp_class, r.class FROM spectra s JOIN results r "
            "USING (specid, source_sha256)"
        )
    good = labels.filter(pl.col("lasp_class").is_in(["STAR", "GALAXY", "QSO"]))
    assert joined.frame.height == labels.height == joined.n_results
    # the shipped real files include one 'Unknown' LAMOST label, the night its sky fibres
    n_unknown = labels.height - good.height
    assert n_unknown >= 1
    res = validate_catalog(cat, "lamost", tmp_path / "r", plots_wanted=False)
    s = res.summary
    assert (s["n_labelled"], s["n_unknown_truth"]) == (good.height, n_unknown)
    assert s["class_accuracy"] == pytest.approx(float((good["lasp_class"] == good["class"]).mean()))
    assert res.report.figures == {} and res.report.plot_note == "plots turned off"
    assert "truth: `lamost`" in res.report.report_md.read_text()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cli_errors_say_what_to_do(
    classified: tuple[Path, Path], shipped_catalog: Path, tmp_path: Path
) -> None:
    cat, truth_path = classified
    r = run_cli(
        "validate",
        str(cat),
        "--truth",
        str(tmp_path / "nope.parquet"),
        "--out",
        str(tmp_path / "r"),
    )
    assert r.returncode == 2 and "truth file" in r.stderr and "does not exist" in r.stderr
    r = run_cli(
        "validate", str(shipped_catalog), "--truth", str(truth_path), "--out", str(tmp_path / "r")
    )
    assert r.returncode == 2 and "run `lamostdb classify" in r.stderr
    other = tmp_path / "other.parquet"
    pl.DataFrame({"obsid": [1, 2], "class": ["STAR", "QSO"], "z": [0.0, 1.0]}).write_parquet(other)
    r = run_cli("validate", str(cat), "--truth", str(other), "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "no overlap" in r.stderr
    bad = tmp_path / "bad.parquet"
    pl.DataFrame({"obsid": [1], "class": ["STAR"]}).write_parquet(bad)
    r = run_cli("validate", str(cat), "--truth", str(bad), "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "lacks column(s) ['z']" in r.stderr
    r = run_cli(
        "validate",
        str(cat),
        "--truth",
        "lamost",
        "--out",
        str(tmp_path / "r"),
        "--conf-threshold",
        "2",
    )
    assert r.returncode == 2 and "--conf-threshold" in r.stderr
    assert not (tmp_path / "r").exists()


def test_cli_without_matplotlib_tells_how_to_get_figures(
    classified: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cat, truth_path = classified
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert (
        main(["validate", str(cat), "--truth", str(truth_path), "--out", str(tmp_path / "r")]) == 0
    )
    out, err = capsys.readouterr()
    assert "pip install 'lamostdb[plot]'" in err and "report:" in out
    assert not list((tmp_path / "r").glob("*.png"))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ablation_reruns_the_steps_and_the_full_method_reproduces_the_catalogue(
    classified: tuple[Path, Path], tmp_path: Path
) -> None:
    cat, truth_path = classified
    r = run_cli(
        "validate",
        str(cat),
        "--truth",
        str(truth_path),
        "--out",
        str(tmp_path / "r"),
        "--ablation",
        "--quiet",
        "--no-plots",
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    md = (tmp_path / "r" / "report.md").read_text()
    from lamostdb.validate.ablation import CONFIGS

    ablation_lines = [ln for ln in r.stdout.splitlines() if ln.startswith("ablation: ")]
    assert [ln.split(": ")[1] for ln in ablation_lines] == [c.name for c in CONFIGS]
    for c in CONFIGS:
        assert c.name in md
    # the last configuration is what classify ran: the same accuracy as the catalogue's
    full = ablation_lines[-1]
    assert f"class accuracy {100 * summary['class_accuracy']:.1f} %" in full
