"""The demo report's figures as PNG bytes, drawn with the fusion report's plotting helpers.

- the MRI: the T2 slice where the tumor is largest, the Grad-CAM over it and the tumor outline;
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


def mri_figure(view: Any) -> bytes:
    """PNG of the T2 slice with the largest tumor area, beside it with the Grad-CAM (inferno) over it;
    the tumor outline on both. Voxel rows and columns as stored, drawn with the in-plane spacing's aspect."""
    from sarcoma_risk.fusion.plots import new_figure, to_png

    k = int(np.argmax(view.tumor.reshape(view.tumor.shape[0], -1).sum(axis=1)))
    t2, cam, tumor = view.t2[k].astype(float), view.gradcam[k].astype(float), view.tumor[k]
    low, high = np.percentile(t2, [1, 99.5])
    aspect = view.spacing_mm[1] / view.spacing_mm[0]  # row spacing over column spacing
    top = cam.max() if cam.max() > 0 else 1.0
    fig = new_figure(9.5, 4.6)
    axes = [fig.add_axes((0.02 + 0.44 * i, 0.08, 0.42, 0.78)) for i in range(2)]
    for ax, with_cam in zip(axes, (False, True)):
        ax.imshow(t2, cmap="gray", vmin=low, vmax=high, aspect=aspect, interpolation="nearest")
        if with_cam:
            shown = ax.imshow(np.ma.masked_less_equal(cam, 0.05 * top), cmap="inferno", vmin=0.0, vmax=top,
                              alpha=0.55, aspect=aspect, interpolation="nearest")
        ax.contour(tumor.astype(float), levels=[0.5], colors=["#00d0ff"], linewidths=1.0)
        ax.set_title("T2 fat-suppressed" + (" with Grad-CAM" if with_cam else "") + f", slice {k + 1}/{len(view.t2)}",
                     fontsize=9)
        ax.set_axis_off()
    fig.colorbar(shown, cax=fig.add_axes((0.91, 0.12, 0.02, 0.7)), label="Grad-CAM (0-1, scaled to its maximum)")
    fig.suptitle("Tumor outline in cyan; the Grad-CAM shows where the tumor region raised the score", fontsize=9)
    return to_png(fig)


def nomogram_figure(model: Any, submodel: str, row: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """PNG of the sub-model's nomogram with the case marked, and the case's points (see ``case_points``)."""
    from sarcoma_risk.fusion.nomogram import case_points, nomogram
    from sarcoma_risk.fusion.plots import plot_nomogram, to_png

    nomo = nomogram(model, submodel)
    points = case_points(model, nomo, dict(row))
    return to_png(plot_nomogram(nomo, case=points)), points


def km_figure(cohort: Any, survival: Mapping[str, float | None], group: str) -> bytes:
    """PNG of the validation cohort's Kaplan-Meier curves by risk group and the case's predicted probabilities."""
    from sarcoma_risk.fusion.groups import compare_groups
    from sarcoma_risk.fusion.plots import plot_kaplan_meier, to_png

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
