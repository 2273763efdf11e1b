"""Three phantom centres as fusion tables (no images), and the federated fit run in one process."""

from __future__ import annotations

import pytest

from sarcoma_risk.synthetic.tables import phantom_fusion_table


@pytest.fixture(scope="session")
def three_centres():
    """240 phantom cases over centres A, B, C, with simulated imaging scores."""
    return phantom_fusion_table(240, ("A", "B", "C"), seed=1)


def local_query(parts):
    """``query(op, request)`` that asks each centre's table directly (no transport)."""
    from sarcoma_risk.federated import centre

    return lambda op, request: {name: centre.answer(rows, request) for name, rows in parts.items()}


def split(table):
    return {str(name): rows for name, rows in table.groupby("centre")}


#: Tiny phantom MRI per centre: phenotypes spread over [-2, 2], survival driven by the phenotype.
MRI_CENTRES = {"A": 10, "B": 8, "C": 6}


@pytest.fixture(scope="session")
def mri_centres(tmp_path_factory):
    """{centre: RadiologyCentre} of tiny-preset patches from phantom MRI (24 cases in all, a few seconds)."""
    import numpy as np

    from sarcoma_risk.federated.imaging import RadiologyCentre
    from sarcoma_risk.radiology.config import preset
    from sarcoma_risk.radiology.io import read_case
    from sarcoma_risk.radiology.preprocess import prepare_case
    from sarcoma_risk.synthetic.mri import write_phantom_mri

    root = tmp_path_factory.mktemp("federated_mri")
    config = preset("tiny")[0]
    rng = np.random.default_rng(5)
    out = {}
    for name, n in MRI_CENTRES.items():
        phenotype = rng.permutation(np.linspace(-2, 2, n))
        arrays = [prepare_case(read_case(c.t2fs, c.seg, c.t1ce), config).array
                  for c in (write_phantom_mri(root / f"{name}{i}", phenotype=float(phenotype[i]), tumor_size_cm=6.0,
                                              centre=name, size="tiny", seed=300 + 10 * i + len(out))
                            for i in range(n))]
        time = 24 * np.exp(-1.2 * phenotype + 0.3 * rng.normal(size=n))
        event = np.arange(n) % 4 != 3  # three events in four cases
        out[name] = RadiologyCentre(name, np.stack(arrays).astype(np.float32), time, event)
    return out


@pytest.fixture(scope="session")
def slide_manifest(tmp_path_factory):
    """A manifest of 16 development cases with one tiny phantom slide each, 8 in centre A and 8 in centre B."""
    import csv

    import numpy as np

    from sarcoma_risk.synthetic.wsi import write_phantom_slide

    root = tmp_path_factory.mktemp("federated_slides")
    rng = np.random.default_rng(11)
    rows = []
    for i, z in enumerate(np.concatenate([rng.permutation(np.linspace(-2, 2, 8)) for _ in "AB"])):
        centre = "AB"[i // 8]
        rendered = write_phantom_slide(root / f"slide-{i:02d}.svs", phenotype=float(z), centre=centre, size="tiny",
                                       seed=2000 + i, annotate=i % 3 != 0)
        rows.append({"case_id": f"FX-{i:03d}", "centre": centre, "split": "development",
                     "time_months": f"{36 * np.exp(-z + 0.15 * rng.normal()):.2f}", "event": "0" if i % 4 == 3 else "1",
                     "slides": rendered.slide.name,
                     "annotations": rendered.annotation.name if rendered.annotation else ""})
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


@pytest.fixture(scope="module")
def one_torch_thread():
    """The CNN tests train on one thread: results do not depend on the machine's core count."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def simulate(centres, run_config, on_message=None, wrap=None):
    """Run FedAvg/FedProx of a CNN over ``centres`` (name -> centre data) in one process; the result.

    ``wrap(client_app)``, when given, is what the grid calls instead of the ClientApp.
    """
    from flwr.clientapp import ClientApp

    from sarcoma_risk.federated.fedavg import add_imaging_handlers, make_fedavg_server_app
    from sarcoma_risk.federated.flower import LocalGrid, server_context

    client = ClientApp()
    add_imaging_handlers(client, lambda context, settings: centres[context.node_config["centre"]])
    run_config = {"preset": "tiny", **run_config}
    grid = LocalGrid(wrap(client) if wrap else client, [{"centre": c} for c in centres], run_config)
    result = {}
    try:
        make_fedavg_server_app(on_message, on_done=lambda r: result.update(result=r))(grid, server_context(run_config))
    finally:
        grid.close()
    return result["result"]


def assert_sender(content) -> None:
    """The message names this release's message format and version, and nothing else in its ``sender`` record."""
    from sarcoma_risk import __version__
    from sarcoma_risk.federated.flower import PROTOCOL

    assert dict(content.config_records["sender"]) == {"protocol": PROTOCOL, "release": __version__}
