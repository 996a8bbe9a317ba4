"""`lamostdb plot`: the figure of one spectrum, its model, masks, windows, title and errors."""

from __future__ import annotations

import dataclasses
import gzip
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SHIPPED_SPECTRA

import lamostdb
from lamostdb.catalog.store import Catalog
from lamostdb.classify.stage import classify
from lamostdb.cli.main import main
from lamostdb.ingest.stage import ingest
from lamostdb.match.batch import ENGINE_COLUMNS, batch_to_matrices
from lamostdb.match.confidence import BLUE_WINDOW, RED_WINDOW
from lamostdb.match.engine import SKY_TELLURIC_MASK_ANGSTROM, get_engine
from lamostdb.match.pipeline import classify_arrays
from lamostdb.match.zwarning import describe
from lamostdb.plot import (
    MatplotlibMissingError,
    SpectrumLookupError,
    spectrum_figure,
    spectrum_plot_data,
    write_spectrum_png,
)
from lamostdb.plot.data import Z_AGREE_KMS, FitSummary, compare_fits
from lamostdb.plot.figure import DPI, FIGSIZE_IN, draw_spectrum, pixel_runs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
C_KMS = 299792.458
STAR_OBSID = 101001  # a G star (no masked pixel)
MASKED_SPECID = "55862-B6212_sp06-003"  # a star without obsid: 166 pixels with ivar = 0
QSO_OBSID = 1247301005  # a QSO at z = 0.309 (broad H alpha and H beta)
SHARED_OBSID = 1247301004  # an M star; the fixture adds a second spectrum with this obsid
COPY_FIBERID = 204
COPY_SPECID = f"60591-LN042429N340750BM01_sp01-{COPY_FIBERID:03d}"


def with_fiberid(fits_bytes: bytes, fiberid: int) -> bytes:
    """The same FITS file with the FIBERID card's value replaced (every other byte kept)."""
    start = next(i for i in range(0, len(fits_bytes), 80) if fits_bytes[i : i + 8] == b"FIBERID ")
    card = fits_bytes[start : start + 80]
    value = f"{fiberid:>20d}".encode()  # fixed-format integer: columns 11-30
    return fits_bytes[:start] + card[:10] + value + card[30:] + fits_bytes[start + 80 :]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped spectra, classified, plus one unclassified copy that shares an obsid."""
    work = tmp_path_factory.mktemp("plot")
    cat = work / "cat"
    with Catalog.create(cat) as c:
        ingest(c, [SHIPPED_SPECTRA], workers=1, progress=False)
        classify(c, workers=1, progress=False)
    src = next(SHIPPED_SPECTRA.rglob("spec-60591-LN042429N340750BM01_sp01-004__*.fits.gz"))
    (work / "extra").mkdir()
    copy = work / "extra" / f"spec-60591-LN042429N340750BM01_sp01-{COPY_FIBERID:03d}.fits"
    copy.write_bytes(with_fiberid(gzip.decompress(src.read_bytes()), COPY_FIBERID))
    with Catalog(cat, mode="w") as c:
        ingest(c, [work / "extra"], workers=1, progress=False)
        assert (
            c.sql("SELECT count(*) AS n FROM spectra WHERE obsid = $o", {"o": SHARED_OBSID})["n"][0]
            == 2
        )
    return cat


def by_gid(artists: Sequence[Any], gid: str) -> Any:
    """The one matplotlib artist with this gid."""
    found = [a for a in artists if a.get_gid() == gid]
    assert len(found) == 1, f"{len(found)} artists with gid {gid!r}"
    return found[0]


def result_row(cat: Path, obsid: int) -> dict[str, Any]:
    with lamostdb.open(cat) as c:
        rows = c.sql("SELECT * FROM results WHERE obsid = $obsid", {"obsid": obsid})
    assert rows.height == 1
    return rows.row(0, named=True)


def span_ranges(collection: Any) -> list[tuple[float, float]]:
    """x extent of every rectangle of a PolyCollection (data coordinates)."""
    return [
        (float(p.vertices[:, 0].min()), float(p.vertices[:, 0].max()))
        for p in collection.get_paths()
    ]


# -- the PNG file -------------------------------------------------------------------------------


def test_png_is_written_with_the_figure_size(catalog: Path, tmp_path: Path) -> None:
    import matplotlib.image

    out = tmp_path / "star.png"
    written = write_spectrum_png(catalog, STAR_OBSID, out=out)
    assert written.path == out and written.data.note is None
    raw = out.read_bytes()
    assert raw[:8] == PNG_SIGNATURE and raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    assert (width, height) == (round(FIGSIZE_IN[0] * DPI), round(FIGSIZE_IN[1] * DPI))
    pixels = matplotlib.image.imread(out)
    assert pixels.shape[:2] == (height, width)
    # something was drawn: not a blank canvas
    assert pixels[..., :3].std() > 0.05
    assert not list(tmp_path.glob(".*.tmp"))


def test_default_file_name_is_the_obsid_or_the_specid(
    catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    written = write_spectrum_png(catalog, specid=MASKED_SPECID)  # a spectrum without obsid
    assert written.path == Path(f"{MASKED_SPECID}.png") and written.data.record.obsid is None
    assert (tmp_path / f"{MASKED_SPECID}.png").read_bytes()[:8] == PNG_SIGNATURE


# -- what the figure shows ----------------------------------------------------------------------


def test_model_line_is_the_engine_model_of_the_stored_spectrum(catalog: Path) -> None:
    fig = spectrum_figure(catalog, STAR_OBSID)
    ax = fig.axes[0]
    engine = get_engine()
    # the model as classify computes it: the batch path from the spectra table
    with lamostdb.open(catalog) as c:
        df = c.sql(
            f"SELECT {', '.join(ENGINE_COLUMNS)} FROM spectra WHERE obsid = $o", {"o": STAR_OBSID}
        )
    flux, ivar = batch_to_matrices(df, engine.grid)
    out = classify_arrays(flux, ivar, engine=engine, fibertype=df["fibertype"].to_numpy())
    model = by_gid(ax.get_lines(), "model")
    np.testing.assert_array_equal(model.get_xdata(), engine.grid.wave_angstrom)
    np.testing.assert_allclose(model.get_ydata(), out.model[0], rtol=1e-12, atol=0)
    # the bright part is the model where the fit had weight, NaN elsewhere
    fitted = by_gid(ax.get_lines(), "model_fitted").get_ydata()
    weighted = (ivar[0] > 0) & (engine.pixel_weight > 0)
    assert 0 < weighted.sum() < weighted.size
    np.testing.assert_allclose(fitted[weighted], out.model[0, weighted], rtol=1e-12)
    assert np.isnan(fitted[~weighted]).all()
    # residuals (flux - model) * sqrt(ivar) on the pixels with data, NaN elsewhere
    resid = by_gid(fig.axes[1].get_lines(), "residual").get_ydata()
    has = ivar[0] > 0
    np.testing.assert_allclose(
        resid[has], (flux[0] - out.model[0])[has] * np.sqrt(ivar[0][has]), rtol=1e-9, atol=1e-12
    )
    assert np.isnan(resid[~has]).all()
    # +-5 sigma lines
    levels = sorted(
        float(ln.get_ydata()[0])
        for ln in fig.axes[1].get_lines()
        if ln.get_gid() is None and ln.get_ydata()[0] != 0
    )
    assert levels == [-5.0, 5.0]


def test_masked_pixel_shading_covers_exactly_the_masked_pixels(catalog: Path) -> None:
    fig = spectrum_figure(catalog, specid=MASKED_SPECID)
    with lamostdb.open(catalog) as c:
        rec = c.spectrum(specid=MASKED_SPECID)
    wave = rec.wave_angstrom()
    expected = (rec.ivar <= 0) | (rec.andmask != 0) | ~np.isfinite(rec.flux)
    assert 100 < expected.sum() < 200 and len(pixel_runs(expected)) > 1
    for ax in fig.axes:  # the same shading in both panels
        covered = np.zeros(wave.size, dtype=bool)
        for lo, hi in span_ranges(by_gid(ax.collections, "masked_pixels")):
            covered |= (wave > lo) & (wave < hi)
        np.testing.assert_array_equal(covered, expected)
    masked_flux = by_gid(fig.axes[0].get_lines(), "flux").get_ydata()
    assert np.isnan(masked_flux[expected]).all()
    np.testing.assert_array_equal(masked_flux[~expected], rec.flux[~expected])


def test_sky_telluric_ranges_and_confidence_windows_are_the_engines(catalog: Path) -> None:
    fig = spectrum_figure(catalog, STAR_OBSID)
    ax = fig.axes[0]
    sky = span_ranges(by_gid(ax.collections, "sky_telluric"))
    assert sky == [tuple(r) for r in SKY_TELLURIC_MASK_ANGSTROM]
    row = result_row(catalog, STAR_OBSID)
    texts = [t.get_text() for t in ax.texts]
    for gid, window, score, tag in (
        ("window_blue", BLUE_WINDOW, row["conf_blue"], "f(B)"),
        ("window_red", RED_WINDOW, row["conf_red"], "f(R)"),
    ):
        box = by_gid(ax.patches, gid).get_bbox()
        assert (box.x0, box.x1) == window
        assert any(f"{tag} = {score:.2f}" in t for t in texts)


def test_title_shows_the_results_row(catalog: Path) -> None:
    row = result_row(catalog, STAR_OBSID)
    assert row["class"] == "STAR"
    title = spectrum_figure(catalog, STAR_OBSID).get_suptitle()
    assert f"obsid {STAR_OBSID}" in title
    assert f"STAR {row['subclass']}" in title
    assert f"z = {row['z']:.6f} ± {row['z_err']:.6f}" in title
    assert f"v = {row['z'] * C_KMS:.1f} ± {row['z_err'] * C_KMS:.1f} km/s" in title
    assert (
        f"Conf {row['conf']:.2f} (f(B) {row['conf_blue']:.2f}, f(R) {row['conf_red']:.2f})" in title
    )
    names = ", ".join(describe(row["zwarning"])) or "none"
    assert f"ZWARNING {row['zwarning']} ({names})" in title
    assert f"template {row['template']}" in title
    assert f"engine {row['engine_version']} (the catalogue's result)" in title
    # a QSO: z without a velocity
    qso = result_row(catalog, QSO_OBSID)
    title = spectrum_figure(catalog, QSO_OBSID).get_suptitle()
    assert f"QSO {qso['subclass']}" in title and f"z = {qso['z']:.6f}" in title
    assert "km/s" not in title


def test_candidates_overlay_matches_the_candidates_table(catalog: Path) -> None:
    fig = spectrum_figure(
        catalog, SHARED_OBSID, specid="60591-LN042429N340750BM01_sp01-004", n_candidates=3
    )
    with lamostdb.open(catalog) as c:
        cand = c.sql(
            "SELECT rank, class, subclass, z FROM candidates WHERE obsid = $o "
            "AND rank BETWEEN 1 AND 3 ORDER BY rank",
            {"o": SHARED_OBSID},
        )
    lines = fig.axes[0].get_lines()
    best = by_gid(lines, "model").get_ydata()
    for r in cand.iter_rows(named=True):
        line = by_gid(lines, f"candidate-{r['rank']}")
        assert f"#{r['rank'] + 1} {r['class']} {r['subclass']} z = {r['z']:.5f}" in line.get_label()
        assert line.get_ydata().shape == best.shape and not np.allclose(line.get_ydata(), best)
    assert not [
        ln
        for ln in lines
        if str(ln.get_gid()).startswith("candidate-")
        and ln.get_gid() not in {"candidate-1", "candidate-2", "candidate-3"}
    ]
    with pytest.raises(ValueError, match="0..9"):
        spectrum_plot_data(catalog, QSO_OBSID, n_candidates=10)


def test_y_limits_ignore_spikes_and_keep_emission_lines(catalog: Path) -> None:
    data = spectrum_plot_data(catalog, QSO_OBSID)
    weighted = (data.grid_ivar > 0) & (data.pixel_weight > 0)
    model_max = float(data.model[weighted].max())  # the peak of broad H alpha
    lo, hi = draw_spectrum(data).axes[0].get_ylim()
    assert hi >= model_max and lo <= 0.0
    flux = data.flux.copy()
    good = np.flatnonzero(~data.masked)
    flux[good[::97]] = 1e6  # cosmic rays on 1 % of the pixels
    flux[good[5::97]] = -1e6
    spiky = dataclasses.replace(data, flux=flux)
    lo2, hi2 = draw_spectrum(spiky).axes[0].get_ylim()
    assert (lo2, hi2) == pytest.approx((lo, hi), rel=0.05)
    assert hi2 < 2 * model_max


# -- when the re-fit is not the catalogue's result ----------------------------------------------


def test_spectrum_without_a_result_is_refit_and_says_so(catalog: Path) -> None:
    original = result_row(catalog, SHARED_OBSID)
    data = spectrum_plot_data(catalog, specid=COPY_SPECID)
    assert data.catalogue is None and not data.is_catalogue_result
    assert data.note is not None and "no result in the catalogue" in data.note
    # the copy has the original's pixels: the re-fit finds the original's answer
    assert (data.refit.objclass, data.refit.subclass) == (original["class"], original["subclass"])
    assert abs(data.refit.z - original["z"]) * C_KMS < Z_AGREE_KMS
    fig = draw_spectrum(data)
    assert "(re-fit)" in fig.get_suptitle()
    assert "no result in the catalogue" in fig.axes[0].get_title(loc="left")


def test_result_of_another_engine_version_is_not_shown_as_the_catalogues(catalog: Path) -> None:
    row = result_row(catalog, STAR_OBSID)
    newer = dataclasses.replace(get_engine(), version="9.9.9")
    data = spectrum_plot_data(catalog, STAR_OBSID, engine=newer)
    assert data.note is not None and f"from engine {row['engine_version']}" in data.note
    assert "re-fit with engine 9.9.9" in data.note and data.shown is data.refit
    fig = draw_spectrum(data)
    assert "engine 9.9.9 (re-fit)" in fig.get_suptitle()
    assert "not the catalogue's result" in fig.axes[0].get_title(loc="left")
    # the same engine: no note and no left title
    same = draw_spectrum(spectrum_plot_data(catalog, STAR_OBSID))
    assert same.axes[0].get_title(loc="left") == ""


def _summary(**kw: object) -> FitSummary:
    base = dict(
        objclass="STAR",
        subclass="G8",
        template="G8V",
        z=1e-4,
        z_err=1e-5,
        rchi2=1.2,
        conf=0.9,
        conf_blue=0.9,
        conf_red=0.9,
        zwarning=0,
        refined=False,
        engine_version="0.2.0",
        continuum="shipped",
    )
    return FitSummary(**{**base, **kw})  # type: ignore[arg-type]


def test_compare_fits_names_what_differs() -> None:
    cat = _summary()
    assert compare_fits(cat, cat) is None
    dz_ok = 0.9 * Z_AGREE_KMS / C_KMS * (1 + cat.z)
    assert compare_fits(cat, _summary(z=cat.z + dz_ok, conf=0.5)) is None
    far = compare_fits(cat, _summary(z=cat.z + 3 * dz_ok))
    assert far is not None and "the re-fit gives STAR G8, z = 0.000" in far
    other = compare_fits(cat, _summary(objclass="GALAXY", subclass="Non", z=0.1))
    assert other is not None and "GALAXY Non, z = 0.100000" in other and "STAR G8" in other
    assert "continuum vectors" in (compare_fits(cat, _summary(continuum="other")) or "")
    assert "no result" in (compare_fits(None, cat) or "")


# -- errors -------------------------------------------------------------------------------------


def test_unknown_and_shared_obsids_say_what_to_do(catalog: Path) -> None:
    with pytest.raises(SpectrumLookupError) as exc:
        spectrum_plot_data(catalog, 42)
    msg = str(exc.value)
    assert "no spectrum with obsid 42" in msg and "lamostdb sql" in msg
    assert "SELECT obsid, specid FROM spectra LIMIT 5" in msg
    with pytest.raises(SpectrumLookupError) as exc:
        spectrum_plot_data(catalog, SHARED_OBSID)
    msg = str(exc.value)
    assert f"obsid {SHARED_OBSID} matches 2 spectra" in msg and "--specid" in msg
    assert COPY_SPECID in msg and "60591-LN042429N340750BM01_sp01-004" in msg
    with pytest.raises(SpectrumLookupError, match="has obsid 1247301004, not 101001"):
        spectrum_plot_data(catalog, STAR_OBSID, specid=COPY_SPECID)
    with pytest.raises(SpectrumLookupError, match="no spectrum with specid 'nope'"):
        spectrum_plot_data(catalog, specid="nope")


def test_without_matplotlib_the_error_says_how_to_install_it(
    catalog: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(MatplotlibMissingError, match=r"pip install 'lamostdb\[plot\]'"):
        spectrum_figure(catalog, STAR_OBSID)
    out = tmp_path / "x.png"
    assert main(["plot", str(catalog), str(STAR_OBSID), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'lamostdb[plot]'" in err and "Traceback" not in err
    assert not out.exists()


# -- the command --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cli_end_to_end(catalog: Path, tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lamostdb.cli",
            "plot",
            str(catalog),
            str(QSO_OBSID),
            "--candidates",
            "2",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr
    png = tmp_path / f"{QSO_OBSID}.png"  # the default name, in the working directory
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert f"{QSO_OBSID}.png" in r.stdout and "QSO" in r.stdout
    assert "warning" not in r.stderr


def test_cli_errors_and_warnings(
    catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plot", str(catalog), "42", "--out", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert "lamostdb plot: error: no spectrum with obsid 42" in err and "lamostdb sql" in err
    assert main(["plot", str(catalog), str(SHARED_OBSID), "--out", str(tmp_path / "b.png")]) == 2
    assert "--specid" in capsys.readouterr().err
    assert main(["plot", str(catalog)]) == 2
    assert "give an OBSID or --specid" in capsys.readouterr().err
    assert main(["plot", str(catalog), str(STAR_OBSID), "--out", str(tmp_path / "c.pdf")]) == 2
    assert "give a name ending in .png" in capsys.readouterr().err
    assert (
        main(["plot", str(catalog), str(STAR_OBSID), "--out", str(tmp_path / "no" / "d.png")]) == 2
    )
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["plot", str(catalog), "55859-F5902_sp01-001"])
    assert "use --specid" in capsys.readouterr().err
    # the unclassified copy: drawn, with a warning that it is a re-fit
    out = tmp_path / "copy.png"
    assert main(["plot", str(catalog), "--specid", COPY_SPECID, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "lamostdb plot: warning: no result in the catalogue" in captured.err
    assert out.read_bytes()[:8] == PNG_SIGNATURE and str(out) in captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.png"]
