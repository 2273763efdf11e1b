"""The demo report's MRI figure: the signed Grad-CAM on a diverging map with symmetric limits and a legend."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest


def view(cam_values: np.ndarray) -> SimpleNamespace:
    shape = cam_values.shape
    tumor = np.zeros(shape, bool)
    tumor[2, 10:20, 12:24] = True
    t2 = np.random.default_rng(0).normal(300, 30, shape)
    return SimpleNamespace(t2=t2, gradcam=cam_values, tumor=tumor, spacing_mm=(0.8, 0.8, 4.0))


def cam_image(fig):
    overlay = [im for ax in fig.axes for im in ax.images if im.get_cmap().name != "gray"]
    assert len(overlay) == 1
    return overlay[0]


def test_a_low_risk_map_is_drawn_on_a_diverging_map_centred_on_zero_with_a_legend():
    from sarcoma_risk.demo.figures import mri_figure, mri_plot

    cam = np.zeros((5, 32, 32), np.float32)
    cam[2, 10:20, 12:24] = np.linspace(-0.8, 0.2, 12)  # mostly lowered the risk
    fig = mri_plot(view(cam))
    image = cam_image(fig)
    assert image.get_cmap().name == "RdBu_r"  # red for raised, blue for lowered
    low, high = image.get_clim()
    assert low == pytest.approx(-0.8) and high == pytest.approx(0.8)  # symmetric: 0 is the neutral middle
    shown = image.get_array()
    assert shown.min() == pytest.approx(-0.8) and shown.count() > 0  # the negative part is drawn
    bar = fig.axes[-1]
    labels = [t.get_text() for t in bar.get_yticklabels()]
    assert "lowers" in labels[0] and "raises" in labels[-1]
    assert mri_figure(view(cam))[:4] == b"\x89PNG"


def test_a_zero_slice_says_so_instead_of_showing_an_empty_overlay_silently():
    from sarcoma_risk.demo.figures import mri_plot

    fig = mri_plot(view(np.zeros((5, 32, 32), np.float32)))
    assert any("Grad-CAM 0 on this slice" in ax.get_title() for ax in fig.axes)
    assert cam_image(fig).get_clim() == (-1.0, 1.0)
