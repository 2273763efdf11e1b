"""Histograms on a grid that the server fixes: what a centre sends instead of its scores or risks.

A centre counts its values per bin of the server's grid, so the message's size depends on the grid,
not on the number of cases. Values beyond the grid are counted in its end bins, which would shift
the extreme percentiles without a trace; the centre therefore also sends how many values fell below
and above the grid, and the server warns when any did.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def grid_histogram(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``values`` per bin of ``edges`` (values beyond the grid in its end bins) and the
    numbers of values below and above the grid."""
    histogram = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0].astype(float)
    outside = np.array([np.count_nonzero(values < edges[0]), np.count_nonzero(values > edges[-1])], dtype=float)
    return histogram, outside


def warn_outside_grid(what: str, outside: np.ndarray, edges: np.ndarray) -> None:
    """Log a warning when the centres' summed ``outside`` counts say the grid's end bins hold clipped values."""
    below, above = (int(v) for v in outside)
    if below or above:
        log.warning("%d %s value(s) below and %d above the histogram grid [%g, %g] were counted in its end "
                    "bins; percentiles beyond the grid are approximate", below, what, above, edges[0], edges[-1])
