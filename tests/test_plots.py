"""Plots checked for what they show: axes, series, shaded abnormal frames, legends."""

import numpy as np
import pytest

from hscvad.evaluation import plots


@pytest.fixture
def saved(monkeypatch):
    """The figures the plotting functions save, by file name (nothing is written)."""
    figs = {}

    def keep(fig, path):
        figs[path.name] = fig

    monkeypatch.setattr(plots, "_save", keep)
    return figs


def test_score_curves_show_each_video_with_its_abnormal_frames_shaded(tmp_path, saved):
    strict = [np.arange(40.0), np.linspace(0, 1, 30)]
    ref = [np.linspace(0, 1, 32), np.linspace(0, 1, 16)]
    keep = [np.arange(32), np.arange(16)]
    labels = [np.r_[np.zeros(10), np.ones(5), np.zeros(10), np.ones(15)].astype(int), np.zeros(30, int)]
    plots.score_curves(["v1", "v2"], strict, ref, keep, labels, tmp_path / "c.pdf", tmp_path / "c.png", "syn",
                       video_dir=tmp_path / "videos")
    assert (tmp_path / "c.pdf").stat().st_size > 0  # one page per video
    assert set(saved) == {"v1.png", "v2.png", "c.png"}
    ax, ax2 = saved["v1.png"].axes[:2]
    assert ax.get_xlabel() == "frame" and ax.get_ylabel() == "strict score"
    assert ax2.get_ylabel() == "reference score"
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), strict[0])
    np.testing.assert_array_equal(ax2.lines[0].get_xdata(), keep[0])
    spans = sorted(tuple(np.round(p.get_x() + np.r_[0, p.get_width()], 1)) for p in ax.patches)
    assert spans == [(9.5, 14.5), (24.5, 39.5)]  # the two abnormal runs, frame edges at +-0.5
    assert not saved["v2.png"].axes[0].patches  # no abnormal frame, nothing shaded
    grid = [a for a in saved["c.png"].axes if a.lines]
    assert [a.get_title() for a in grid] == ["v1", "v2"]


def test_histograms_split_normal_and_abnormal_frames(tmp_path, saved):
    strict = [np.r_[np.zeros(20), np.full(10, 5.0)]]
    labels = [np.r_[np.zeros(20), np.ones(10)].astype(int)]
    plots.histograms(strict, [np.linspace(0, 1, 16)], [np.arange(14, 30)], labels, tmp_path / "h.png", "syn")
    left, right = saved["h.png"].axes
    assert left.get_title() == "syn: strict protocol" and right.get_title() == "syn: reference protocol"
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["normal (20)", "abnormal (10)"]
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["normal (6)", "abnormal (10)"]


def test_object_embedding_colours_test_samples_by_score(tmp_path, saved):
    rng = np.random.default_rng(0)
    plots.object_embedding(rng.normal(size=(50, 6)), rng.normal(size=(8, 6)), np.arange(8.0), tmp_path / "e.png", "syn")
    ax = saved["e.png"].axes[0]
    train, test = ax.collections[:2]
    assert len(train.get_offsets()) == 50 and len(test.get_offsets()) == 8
    assert sorted(test.get_array().tolist()) == list(np.arange(8.0))
    assert ax.get_xlabel() == "PC 1" and ax.get_ylabel() == "PC 2"


def test_principal_axes_are_the_leading_singular_vectors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 40)) * np.linspace(5, 0.1, 40)  # distinct variances: unique axes
    x = x @ np.linalg.qr(rng.normal(size=(40, 40)))[0]
    x -= x.mean(0)
    axes = plots.principal_axes(x, 2)
    vt = np.linalg.svd(x, full_matrices=False)[2][:2].T
    np.testing.assert_allclose(np.abs(axes.T @ vt), np.eye(2), atol=1e-8)
    assert (axes[np.abs(axes).argmax(0), [0, 1]] > 0).all()  # signed: largest component positive
