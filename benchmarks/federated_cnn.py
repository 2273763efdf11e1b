"""The CNN mode of ``bench_federated.py``: a CNN trained on each centre alone, federated and pooled, scored on centre D.

For each seed a phantom is rendered at the ``tiny`` size with :func:`sarcoma_risk.synthetic.generate_cohort`
(what ``sarcoma-risk synth`` runs): ``--train-cases`` cases in each of centres A, B and C, and
``--held-out-cases`` cases in centre D, drawn apart so that D can be larger (a case depends only on
the seed, its centre and its index, so D's cases are those a four-centre cohort would hold). synth
makes the first centre the development cohort and the others validation; here every case of A, B
and C is development and every case of D validation, so the manifests' split column is overwritten
in memory. The MRI is read and prepared once (:func:`sarcoma_risk.radiology.cohort.prepare_cohort`
with the tiny preset), and every arm trains on the same arrays:

* alone: one centre's cases, ``rounds x local epochs`` epochs of the ordinary trainer
  (:meth:`RadiologyCoxModel.fit`, tiny preset, no inner validation share and no early stopping, as
  a federated round trains);
* federated: FedAvg over A, B and C, ``rounds`` rounds of ``local epochs`` epochs, through Flower's
  wire format in one process, as ``sarcoma-risk federated simulate --model radiology`` runs it
  (:func:`make_imaging_client_app`, :class:`LocalGrid`, :func:`make_fedavg_server_app`); the
  centres are handed their prepared arrays instead of reading their manifest again;
* pooled: the ordinary trainer on A, B and C together, with the same epochs (``train radiology
  --folds 0`` without early stopping).

All start from the same initial weights (the seed's). Each model scores D's cases, and Harrell's C
of the score on D is reported, with the C of D's true MRI phenotype (what the CNN should recover)
for scale. The seed also seeds training.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from common import emit, machine

from sarcoma_risk.cohort import CohortCase, Split, read_manifest
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.federated.fedavg import FedAvgResult, make_fedavg_server_app, make_imaging_client_app
from sarcoma_risk.federated.flower import LocalGrid, server_context
from sarcoma_risk.federated.imaging import RadiologyCentre
from sarcoma_risk.radiology.cohort import prepare_cohort
from sarcoma_risk.radiology.config import preset
from sarcoma_risk.radiology.train import RadiologyCoxModel
from sarcoma_risk.survival.concordance import harrell_c
from sarcoma_risk.synthetic import generate_cohort

BENCH = "federated"
TRAINING = ("A", "B", "C")
HELD_OUT = "D"
PRESET = "tiny"


def render(root: Path, seed: int, train_cases: int, held_out_cases: int, workers: int) -> tuple[list[CohortCase],
                                                                                                  dict[str, float]]:
    """The phantom's cases (A, B, C development; D validation) and each case's true MRI phenotype."""
    cases: list[CohortCase] = []
    phenotype: dict[str, float] = {}
    for folder, centres, n, split in (("training", TRAINING, train_cases * len(TRAINING), Split.DEVELOPMENT),
                                      ("held-out", (HELD_OUT,), held_out_cases, Split.VALIDATION)):
        cohort = generate_cohort(root / folder, n, centres, seed, size="tiny", workers=workers)
        cases += [replace(c, split=split) for c in read_manifest(cohort.manifest).cases]
        phenotype |= {c["case_id"]: float(c["z_r"]) for c in cohort.load_truth()["cases"]}
    return cases, phenotype


@dataclass
class Centres:
    """The prepared patches and outcomes of each training centre, and of the held-out centre."""

    training: dict[str, RadiologyCentre]
    held_out: RadiologyCentre
    held_out_ids: list[str]

    def pooled(self) -> RadiologyCentre:
        parts = list(self.training.values())
        return RadiologyCentre("+".join(self.training), np.concatenate([p.X for p in parts]),
                               np.concatenate([p.time for p in parts]), np.concatenate([p.event for p in parts]))


def radiology_centres(cases: list[CohortCase]) -> Centres:
    """Every case's network input, stacked per centre as the federated client stacks a centre's cases."""
    pre = preset(PRESET)[0]
    patches = prepare_cohort(cases, pre, pre.sequences)
    centre_of = {c.case_id: c.centre for c in cases}
    time_, event = np.asarray(patches.time, dtype=float), np.asarray(patches.event, dtype=bool)

    def centre(name: str, split: Split) -> tuple[RadiologyCentre, list[str]]:
        usable = patches.select(split, pre.sequences)
        positions = np.array([i for i in usable if centre_of[patches.case_ids[i]] == name], dtype=int)
        X = patches.stack(positions, pre.sequences, pre.mask_channel)
        return RadiologyCentre(name, X, time_[positions], event[positions]), [patches.case_ids[i] for i in positions]

    held_out, ids = centre(HELD_OUT, Split.VALIDATION)
    return Centres({name: centre(name, Split.DEVELOPMENT)[0] for name in TRAINING}, held_out, ids)


def fit_alone(data: RadiologyCentre, seed: int, epochs: int) -> RadiologyCoxModel:
    """The ordinary trainer on one set of cases for ``epochs`` epochs (no inner validation, no early stopping)."""
    pre, model, train = preset(PRESET)
    config = replace(train, epochs=epochs, min_epochs=0, validation_fraction=0.0, seed=seed)
    return RadiologyCoxModel(pre, model, config).fit(data.X, data.time, data.event)


def fit_federated(centres: dict[str, RadiologyCentre], seed: int, rounds: int, local_epochs: int) -> FedAvgResult:
    """FedAvg over ``centres`` in one process, as ``federated simulate --model radiology`` runs it."""
    run_config = {"model": "radiology", "preset": PRESET, "rounds": rounds, "local-epochs": local_epochs,
                  "seed": seed, "min-centres": len(centres), "min-centre-events": 1}
    client = make_imaging_client_app(lambda context, settings: centres[context.node_config["centre"]])
    grid = LocalGrid(client, [{"centre": name} for name in centres], run_config)
    out: dict[str, FedAvgResult] = {}
    try:
        make_fedavg_server_app(on_done=lambda result: out.update(result=result))(grid, server_context(run_config))
    finally:
        grid.close()
    return out["result"]


def c_index(model: RadiologyCoxModel, held_out: RadiologyCentre) -> float:
    return harrell_c(held_out.time, held_out.event, model.predict(held_out.X))


def run_seed(seed: int, args: argparse.Namespace, figures: dict[str, list[float]], wire: dict[str, list[Any]]) -> None:
    """Render one phantom, train every arm, and append each figure of this seed."""
    epochs = args.rounds * args.local_epochs
    with tempfile.TemporaryDirectory(prefix="bench-federated-") as tmp:
        start = time.perf_counter()
        cases, phenotype = render(Path(tmp), seed, args.train_cases, args.held_out_cases, args.workers)
        centres = radiology_centres(cases)
        wire["render_seconds"].append(time.perf_counter() - start)
    held_out = centres.held_out
    for name, data in [*centres.training.items(), (HELD_OUT, held_out)]:
        if not data.event.any():
            raise InvalidInput(f"seed {seed}: centre {name} has no recurrence among its {len(data.X)} cases; each "
                               "centre needs one (more --train-cases / --held-out-cases, or another --first-seed)")
    figures.setdefault("c_index_mri_phenotype", []).append(
        harrell_c(held_out.time, held_out.event, np.array([phenotype[i] for i in centres.held_out_ids])))
    for name, data in centres.training.items():
        figures.setdefault(f"c_index_alone_{name}", []).append(c_index(fit_alone(data, seed, epochs), held_out))
    start = time.perf_counter()
    result = fit_federated(centres.training, seed, args.rounds, args.local_epochs)
    wire["federated_seconds"].append(time.perf_counter() - start)
    figures.setdefault("c_index_federated", []).append(c_index(result.model, held_out))
    start = time.perf_counter()
    pooled = fit_alone(centres.pooled(), seed, epochs)
    wire["pooled_seconds"].append(time.perf_counter() - start)
    figures.setdefault("c_index_pooled", []).append(c_index(pooled, held_out))
    train_rounds = [r for r in result.rounds if r["type"] == "train"]
    wire["rounds"].append(len(result.rounds))
    wire["sent"] += [r["bytes_sent"] for r in train_rounds]
    wire["received"] += [r["bytes_received"] for r in train_rounds]
    wire["scores_round"] += [r["bytes_sent"] + r["bytes_received"] for r in result.rounds if r["type"] != "train"]
    wire["cases"].append({name: len(c.X) for name, c in centres.training.items()} | {HELD_OUT: len(held_out.X)})


def report(args: argparse.Namespace, figures: dict[str, list[float]], wire: dict[str, list[Any]]) -> None:
    """One JSON line per figure: means over seeds with the worst (min) and best (max) seed."""
    context = {"model": args.model, "seeds": args.seeds, "first_seed": args.first_seed,
               "train_cases_per_centre": args.train_cases, "held_out_cases": args.held_out_cases,
               "usable_cases": wire["cases"], "preset": PRESET,
               "rounds_x_local_epochs": f"{args.rounds}x{args.local_epochs}",
               "pooled_and_alone": "ordinary trainer, same epochs, no early stopping", **machine()}
    for figure, values in figures.items():
        emit(BENCH, figure, round(statistics.mean(values), 4), "harrell_c",
             min=round(min(values), 4), max=round(max(values), 4), **context)
    gap = [f - p for f, p in zip(figures["c_index_federated"], figures["c_index_pooled"])]
    emit(BENCH, "c_index_federated_minus_pooled", round(statistics.mean(gap), 4), "harrell_c",
         min=round(min(gap), 4), max=round(max(gap), 4), **context)
    best_alone = [max(figures[f"c_index_alone_{c}"][k] for c in TRAINING) for k in range(args.seeds)]
    above = sum(f > b for f, b in zip(figures["c_index_federated"], best_alone))
    emit(BENCH, "federated_above_best_single_centre", above, "seeds", of=args.seeds, **context)
    emit(BENCH, "rounds", round(statistics.mean(wire["rounds"]), 1), "rounds",
         note=f"{args.rounds} FedAvg train rounds, then 1 query.scores round (the centring)", **context)
    emit(BENCH, "bytes_sent_per_round", round(statistics.mean(wire["sent"])), "bytes", max=max(wire["sent"]),
         note=f"train rounds: the state dict, server to all {len(TRAINING)} centres, Flower protobuf wire size",
         **context)
    emit(BENCH, "bytes_received_per_round", round(statistics.mean(wire["received"])), "bytes",
         max=max(wire["received"]), note=f"train rounds: all {len(TRAINING)} centres to server", **context)
    emit(BENCH, "bytes_scores_round", round(statistics.mean(wire["scores_round"])), "bytes",
         note="the query.scores round, both ways", **context)
    for figure, key in (("render_and_prepare_seconds", "render_seconds"),
                        ("federated_fit_seconds", "federated_seconds"), ("pooled_fit_seconds", "pooled_seconds")):
        emit(BENCH, figure, round(statistics.mean(wire[key]), 1), "s", **context)


def main(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    figures: dict[str, list[float]] = {}
    wire: dict[str, list[Any]] = {k: [] for k in ("render_seconds", "federated_seconds", "pooled_seconds", "rounds",
                                                   "sent", "received", "scores_round", "cases")}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        run_seed(seed, args, figures, wire)
    report(args, figures, wire)
