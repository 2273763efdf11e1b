"""The demo report's figures as PNG bytes, drawn with the fusion report's plotting helpers.

- the MRI: the T2 slice where the tumor is largest, the signed Grad-CAM over it (diverging colours,
  symmetric limits, a colour bar saying which side raised the risk) and the tumor outline;
- the nomogram of the sub-model that scored the case, with the case's points marked
  (:func:`sarcoma_risk.fusion.plots.plot_nomogram`);
- the validation cohort's Kaplan-Meier curves by risk group
  (:func:`sarcoma_risk.fusion.plots.plot_kaplan_meier`) with the case's predicted recurrence-free
  probabilities at 1, 3 and 5 years.

The slide heatmap is drawn by the pathology module (:func:`sarcoma_risk.pathology.outputs.write_heatmap`).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from sarcoma_risk.fusion.groups import compare_groups
from sarcoma_risk.fusion.nomogram import case_points, nomogram
from sarcoma_risk.fusion.plots import new_figure, plot_kaplan_meier, plot_nomogram, to_png


def mri_figure(view: Any) -> bytes:
    """PNG of :func:`mri_plot`."""

    return to_png(mri_plot(view))


def mri_plot(view: Any) -> Any:
    """The matplotlib figure of the T2 slice with the largest tumor area, beside it with the signed Grad-CAM over it;
    the tumor outline on both. Voxel rows and columns as stored, drawn with the in-plane spacing's aspect.

    The Grad-CAM is drawn with a diverging colour map on limits symmetric about zero (red where the
    tumor region raised the risk, blue where it lowered it, near-zero values left out), and a colour
    bar whose ends say which is which. A map that is zero on this slice says so in its title.
    """

    k = int(np.argmax(view.tumor.reshape(view.tumor.shape[0], -1).sum(axis=1)))
    t2, cam, tumor = view.t2[k].astype(float), view.gradcam[k].astype(float), view.tumor[k]
    low, high = np.percentile(t2, [1, 99.5])
    aspect = view.spacing_mm[1] / view.spacing_mm[0]  # row spacing over column spacing
    extent = float(np.abs(cam).max())
    limit = extent if extent > 0 else 1.0
    fig = new_figure(9.5, 4.6)
    axes = [fig.add_axes((0.02 + 0.44 * i, 0.08, 0.42, 0.78)) for i in range(2)]
    for ax, with_cam in zip(axes, (False, True)):
        ax.imshow(t2, cmap="gray", vmin=low, vmax=high, aspect=aspect, interpolation="nearest")
        title = "T2 fat-suppressed"
        if with_cam:
            shown = ax.imshow(np.ma.masked_where(np.abs(cam) <= 0.05 * limit, cam), cmap="RdBu_r", vmin=-limit,
                              vmax=limit, alpha=0.65, aspect=aspect, interpolation="nearest")
            title += " with Grad-CAM" if extent > 0 else " (Grad-CAM 0 on this slice)"
        ax.contour(tumor.astype(float), levels=[0.5], colors=["#00d0ff"], linewidths=1.0)
        ax.set_title(f"{title}, slice {k + 1}/{len(view.t2)}", fontsize=9)
        ax.set_axis_off()
    bar = fig.colorbar(shown, cax=fig.add_axes((0.91, 0.12, 0.02, 0.7)), ticks=[-limit, 0.0, limit])
    bar.ax.set_yticklabels(["lowers\nthe risk", "0", "raises\nthe risk"], fontsize=8)
    bar.set_label("Grad-CAM (share of the score, scaled to the largest)", fontsize=8)
    fig.suptitle("Tumor outline in cyan; red: where the tumor region raised the risk score, blue: where it "
                 "lowered it", fontsize=9)
    return fig


def nomogram_figure(model: Any, submodel: str, row: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """PNG of the sub-model's nomogram with the case marked, and the case's points (see ``case_points``)."""

    nomo = nomogram(model, submodel)
    points = case_points(model, nomo, dict(row))
    return to_png(plot_nomogram(nomo, case=points)), points


def km_figure(cohort: Any, survival: Mapping[str, float | None], group: str) -> bytes:
    """PNG of the validation cohort's Kaplan-Meier curves by risk group and the case's predicted probabilities."""

    ticks = list(np.arange(0.0, float(cohort.time_months.max()) + 12.0, 12.0))
    comparison = compare_groups(cohort.time_months, cohort.event, cohort.group)
    fig = plot_kaplan_meier(cohort.time_months, cohort.event, cohort.group, comparison,
                            f"Validation cohort (phantom centre B, n = {cohort.time_months.size}) by risk group; "
                            f"this case: {group} risk", ticks)
    ax = fig.axes[0]
    months = [float(h) for h, p in survival.items() if p is not None]
    probabilities = [float(p) for p in survival.values() if p is not None]
    ax.plot(months, probabilities, marker="D", ls=":", color="#d62728" if group == "high" else "#1f77b4",
            ms=7, label="this case (predicted)")
    ax.legend(fontsize=8, loc="upper right")
    return to_png(fig)
