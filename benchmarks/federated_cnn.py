"""The CNN modes of ``bench_federated.py``: a CNN trained on each centre alone, federated and pooled, scored on D.

For each seed a phantom is rendered at the ``tiny`` size with :func:`sarcoma_risk.synthetic.generate_cohort`
(what ``sarcoma-risk synth`` runs), only the images the CNN reads (MRI or slides; the cases and outcomes are
those of the full phantom): ``--train-cases`` cases in each of centres A, B and C, and
``--held-out-cases`` cases in centre D, drawn apart so that D can be larger (a case depends only on
the seed, its centre and its index, so D's cases are those a four-centre cohort would hold). synth
makes the first centre the development cohort and the others validation; here every case of A, B
and C is development and every case of D validation, so the manifests' split column is overwritten
in memory. Every arm trains on the same data, from the same initial weights (the seed's), with the
tiny preset's hyper-parameters and ``rounds x local epochs`` epochs in all:

* alone: one centre's cases, with the ordinary trainer;
* federated: FedAvg over A, B and C, ``rounds`` rounds of ``local epochs`` epochs, through Flower's
  wire format in one process, as ``sarcoma-risk federated simulate --model radiology|pathology``
  runs it (:func:`make_imaging_client_app`, :class:`LocalGrid`, :func:`make_fedavg_server_app`); the
  centres are handed their prepared data instead of reading their manifest again;
* pooled: the ordinary trainer on A, B and C together (one "centre" of all their cases).

With ``--select-round`` (pathology only) the federated arm keeps the round whose average scores best
on the centres' fixed inner validation shares (``federated --select-round``), as the alone and pooled
arms keep their best epoch on theirs.

``radiology``: the CBAM 3D CNN on the MRI prepared once (:func:`prepare_cohort`); alone and pooled
are :meth:`RadiologyCoxModel.fit` without inner validation share or early stopping, as a federated
round trains (``train radiology --folds 0`` with fixed epochs). The score on D is the network's.

``pathology``: the patch model (ShuffleNetV2) with :class:`PatchTrainer`, keeping its best epoch on
its inner validation share, as a federated round does (``train pathology --folds 0``), then the
slide signature fitted on the model's in-sample tile scores of the same cases (the federated one
comes from the centres' sums, stratified by centre; alone and pooled, the pooled rows). The score
on D is the signature of D's slides tiled by the patch model.

Harrell's C of the score on D is reported for each arm, with the C of D's true phenotype that the
images render (what the CNN should recover) for scale. The seed also seeds training.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench_federated import BENCH, TRAINING, emit_comparison
from common import emit, machine

from sarcoma_risk.cohort import CohortCase, Split, read_manifest
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.federated.fedavg import FedAvgResult, make_fedavg_server_app, make_imaging_client_app
from sarcoma_risk.federated.flower import LocalGrid, server_context
from sarcoma_risk.federated.imaging import RadiologyCentre
from sarcoma_risk.federated.patchmodel import PRESETS as PATCH_PRESETS
from sarcoma_risk.federated.patchmodel import PathologyCentre
from sarcoma_risk.pathology.crossfit import SignatureConfig, score_cases
from sarcoma_risk.pathology.model import state_bytes
from sarcoma_risk.pathology.signature import SlideSignature
from sarcoma_risk.pathology.slide import slide_fingerprint
from sarcoma_risk.pathology.train import PatchTrainer, SlideRef, TrainingCase
from sarcoma_risk.provenance import sha256_bytes
from sarcoma_risk.radiology.cohort import prepare_cohort
from sarcoma_risk.radiology.config import preset
from sarcoma_risk.radiology.train import RadiologyCoxModel
from sarcoma_risk.survival.concordance import harrell_c
from sarcoma_risk.synthetic import generate_cohort

HELD_OUT = "D"
PRESET = "tiny"


def render(root: Path, seed: int, train_cases: int, held_out_cases: int, workers: int,
           modality: str) -> tuple[list[CohortCase], dict[str, dict[str, float]]]:
    """The phantom's cases (A, B, C development; D validation) with the images of ``modality`` ("mri" or
    "slides"), and each case's true phenotypes (z_r MRI, z_p slide)."""
    cases: list[CohortCase] = []
    truth: dict[str, dict[str, float]] = {}
    for folder, centres, n, split in (("training", TRAINING, train_cases * len(TRAINING), Split.DEVELOPMENT),
                                      ("held-out", (HELD_OUT,), held_out_cases, Split.VALIDATION)):
        cohort = generate_cohort(root / folder, n, centres, seed, size="tiny", workers=workers, modalities=(modality,))
        cases += [replace(c, split=split) for c in read_manifest(cohort.manifest).cases]
        truth |= {c["case_id"]: {"z_r": float(c["z_r"]), "z_p": float(c["z_p"])} for c in cohort.load_truth()["cases"]}
    return cases, truth


class RadiologyArms:
    """The radiology CNN (CBAM 3D CNN on the tiny preset's patches): what each arm trains and how D is scored."""

    name, modality = "radiology", "mri"
    phenotype, phenotype_figure = "z_r", "c_index_mri_phenotype"  # the latent the MRI renders
    after_training = "bytes_scores_round", "query.scores round (the centring)", "the query.scores round, both ways"
    how = "ordinary trainer, same epochs, no early stopping"

    def centres(self, cases: list[CohortCase]) -> tuple[dict[str, RadiologyCentre], RadiologyCentre]:
        """Every case's network input, stacked per centre as the federated client stacks a centre's cases."""
        pre = preset(PRESET)[0]
        patches = prepare_cohort(cases, pre, pre.sequences)
        centre_of = {c.case_id: c.centre for c in cases}
        time_, event = np.asarray(patches.time, dtype=float), np.asarray(patches.event, dtype=bool)
        self.ids: dict[str, list[str]] = {}

        def centre(name: str, split: Split) -> RadiologyCentre:
            usable = patches.select(split, pre.sequences)
            positions = np.array([i for i in usable if centre_of[patches.case_ids[i]] == name], dtype=int)
            self.ids[name] = [patches.case_ids[i] for i in positions]
            X = patches.stack(positions, pre.sequences, pre.mask_channel)
            return RadiologyCentre(name, X, time_[positions], event[positions])

        return {name: centre(name, Split.DEVELOPMENT) for name in TRAINING}, centre(HELD_OUT, Split.VALIDATION)

    def outcome(self, data: RadiologyCentre) -> tuple[list[str], np.ndarray, np.ndarray]:
        return self.ids[data.name], data.time, data.event

    def pooled(self, parts: dict[str, RadiologyCentre]) -> RadiologyCentre:
        centres = list(parts.values())
        return RadiologyCentre("+".join(parts), np.concatenate([p.X for p in centres]),
                               np.concatenate([p.time for p in centres]), np.concatenate([p.event for p in centres]))

    def alone(self, data: RadiologyCentre, seed: int, epochs: int) -> RadiologyCoxModel:
        """The ordinary trainer for ``epochs`` epochs, without inner validation or early stopping (as a round)."""
        pre, model, train = preset(PRESET)
        config = replace(train, epochs=epochs, min_epochs=0, validation_fraction=0.0, seed=seed)
        return RadiologyCoxModel(pre, model, config).fit(data.X, data.time, data.event)

    def from_federated(self, result: FedAvgResult) -> RadiologyCoxModel:
        return result.model

    def predict(self, model: RadiologyCoxModel, data: RadiologyCentre) -> np.ndarray:
        return model.predict(data.X)

    def close(self, centres: list[RadiologyCentre]) -> None:
        """Nothing is held open."""


class PathologyArms:
    """The patch model (ShuffleNetV2, tiny preset) and its slide signature: each arm's pair, and how D is scored."""

    name, modality = "pathology", "slides"
    phenotype, phenotype_figure = "z_p", "c_index_slide_phenotype"  # the latent the slides render
    after_training = ("bytes_signature_rounds", "query.signature rounds (the slide signature from sums)",
                      "the query.signature rounds together, both ways")
    how = ("ordinary trainer, same epochs, best epoch on its inner validation share; signature fitted on its "
           "in-sample tile scores")
    signature = SignatureConfig()  # train pathology's defaults, which the federated signature uses too

    def centres(self, cases: list[CohortCase]) -> tuple[dict[str, PathologyCentre], PathologyCentre]:
        """Each centre's cases with slides, as the federated client lists a centre's development cases."""
        def centre(name: str) -> PathologyCentre:
            return PathologyCentre(name, [
                TrainingCase(c.case_id, c.time_months, c.event,
                             [SlideRef(p, a, slide_fingerprint(p)["sha256"]) for p, a in zip(c.slides, c.annotations)])
                for c in cases if c.centre == name and c.has_slides])

        return {name: centre(name) for name in TRAINING}, centre(HELD_OUT)

    def outcome(self, data: PathologyCentre) -> tuple[list[str], np.ndarray, np.ndarray]:
        return ([c.case_id for c in data.cases], np.array([c.time for c in data.cases], dtype=float),
                np.array([c.event for c in data.cases], dtype=bool))

    def pooled(self, parts: dict[str, PathologyCentre]) -> PathologyCentre:
        return PathologyCentre("+".join(parts), [c for p in parts.values() for c in p.cases])

    def alone(self, data: PathologyCentre, seed: int, epochs: int) -> tuple[torch.nn.Module, SlideSignature]:
        """``train pathology --folds 0`` for ``epochs`` epochs (best epoch on its inner validation share, as a
        round), then the signature fitted on the model's in-sample tile scores, as the federated one is."""
        config = replace(PATCH_PRESETS[PRESET], epochs=epochs, patience=epochs, seed=seed)
        model = PatchTrainer(config).fit(data.cases, data.pool).model
        counts = self._counts(model, data)
        _, time_, event = self.outcome(data)
        return model, self.signature.make().fit(counts, time_, event)

    def from_federated(self, result: FedAvgResult) -> tuple[torch.nn.Module, SlideSignature]:
        return result.model, result.signature

    def predict(self, model: tuple[torch.nn.Module, SlideSignature], data: PathologyCentre) -> np.ndarray:
        return model[1].predict(self._counts(model[0], data))

    def _counts(self, model: torch.nn.Module, data: PathologyCentre) -> list[dict[str, list[int]]]:
        """Each case's pooled tile counts under ``model``, as ``train pathology`` scores a case's slides."""
        scored = score_cases(data.cases, model, sha256_bytes(state_bytes(model)), PATCH_PRESETS[PRESET],
                             self.signature.make(), None, False)
        return [scored[c.case_id]["counts"] for c in data.cases]

    def close(self, centres: list[PathologyCentre]) -> None:
        for centre in centres:
            centre.pool.close()


ARMS = {"radiology": RadiologyArms, "pathology": PathologyArms}


def fit_federated(model: str, centres: dict[str, Any], seed: int, rounds: int, local_epochs: int,
                  select_round: bool = False) -> FedAvgResult:
    """FedAvg over ``centres`` in one process, as ``federated simulate --model radiology|pathology`` runs it."""
    run_config = {"model": model, "preset": PRESET, "rounds": rounds, "local-epochs": local_epochs,
                  "seed": seed, "min-centres": len(centres), "min-centre-events": 1, "select-round": select_round}
    client = make_imaging_client_app(lambda context, settings: centres[context.node_config["centre"]])
    grid = LocalGrid(client, [{"centre": name} for name in centres], run_config)
    out: dict[str, FedAvgResult] = {}
    try:
        make_fedavg_server_app(on_done=lambda result: out.update(result=result))(grid, server_context(run_config))
    finally:
        grid.close()
    return out["result"]


def run_seed(seed: int, args: argparse.Namespace, figures: dict[str, list[float]], wire: dict[str, list[Any]]) -> None:
    """Render one phantom, train every arm, and append each figure of this seed."""
    arms = ARMS[args.model]()
    epochs = args.rounds * args.local_epochs
    with tempfile.TemporaryDirectory(prefix="bench-federated-") as tmp:  # the slides are read until the end
        start = time.perf_counter()
        cases, truth = render(Path(tmp), seed, args.train_cases, args.held_out_cases, args.workers, arms.modality)
        training, held_out = arms.centres(cases)
        wire["render_seconds"].append(time.perf_counter() - start)
        try:
            run_arms(arms, seed, args, epochs, training, held_out, truth, figures, wire)
        finally:
            arms.close([*training.values(), held_out])


def run_arms(arms: RadiologyArms | PathologyArms, seed: int, args: argparse.Namespace, epochs: int,
             training: dict[str, Any], held_out: Any, truth: dict[str, dict[str, float]],
             figures: dict[str, list[float]], wire: dict[str, list[Any]]) -> None:
    for name, data in [*training.items(), (HELD_OUT, held_out)]:
        if not arms.outcome(data)[2].any():
            raise InvalidInput(f"seed {seed}: centre {name} has no recurrence among its {len(arms.outcome(data)[0])} "
                               "cases; each centre needs one (more --train-cases / --held-out-cases, or another "
                               "--first-seed)")
    ids, time_, event = arms.outcome(held_out)

    def c_index(model: Any) -> float:
        return harrell_c(time_, event, arms.predict(model, held_out))

    figures.setdefault(arms.phenotype_figure, []).append(
        harrell_c(time_, event, np.array([truth[i][arms.phenotype] for i in ids])))
    for name, data in training.items():
        figures.setdefault(f"c_index_alone_{name}", []).append(c_index(arms.alone(data, seed, epochs)))
    start = time.perf_counter()
    result = fit_federated(arms.name, training, seed, args.rounds, args.local_epochs, args.select_round)
    wire["federated_seconds"].append(time.perf_counter() - start)
    figures.setdefault("c_index_federated", []).append(c_index(arms.from_federated(result)))
    start = time.perf_counter()
    pooled = arms.alone(arms.pooled(training), seed, epochs)
    wire["pooled_seconds"].append(time.perf_counter() - start)
    figures.setdefault("c_index_pooled", []).append(c_index(pooled))
    train_rounds = [r for r in result.rounds if r["type"] == "train"]
    evaluate_rounds = [r for r in result.rounds if r["type"] == "evaluate"]
    after = [r for r in result.rounds if r["type"] not in ("train", "evaluate")]
    wire["rounds"].append(len(result.rounds))
    wire["after"].append(len(after))
    wire["sent"] += [r["bytes_sent"] for r in train_rounds]
    wire["received"] += [r["bytes_received"] for r in train_rounds]
    wire["after_bytes"].append(sum(r["bytes_sent"] + r["bytes_received"] for r in after))
    wire["evaluate_bytes"].append(sum(r["bytes_sent"] + r["bytes_received"] for r in evaluate_rounds))
    if result.selected_round is not None:
        wire["selected_round"].append(result.selected_round)
    wire["cases"].append({name: len(arms.outcome(c)[0]) for name, c in training.items()} | {HELD_OUT: len(ids)})


def report(args: argparse.Namespace, figures: dict[str, list[float]], wire: dict[str, list[Any]]) -> None:
    """One JSON line per figure: means over seeds with the worst (min) and best (max) seed."""
    arms = ARMS[args.model]
    context = {"model": args.model, "seeds": args.seeds, "first_seed": args.first_seed,
               "train_cases_per_centre": args.train_cases, "held_out_cases": args.held_out_cases,
               "usable_cases": wire["cases"], "preset": PRESET,
               "rounds_x_local_epochs": f"{args.rounds}x{args.local_epochs}",
               "pooled_and_alone": arms.how, "select_round": args.select_round, **machine()}
    emit_comparison(figures, args.seeds, context)
    evaluated = ", each followed by an evaluate round (round selection)" if args.select_round else ""
    emit(BENCH, "rounds", round(statistics.mean(wire["rounds"]), 1), "rounds",
         note=f"{args.rounds} FedAvg train rounds{evaluated}, then {span(wire['after'])} {arms.after_training[1]}",
         **context)
    emit(BENCH, "bytes_sent_per_round", round(statistics.mean(wire["sent"])), "bytes", max=max(wire["sent"]),
         note=f"train rounds: the state dict, server to all {len(TRAINING)} centres, Flower protobuf wire size",
         **context)
    emit(BENCH, "bytes_received_per_round", round(statistics.mean(wire["received"])), "bytes",
         max=max(wire["received"]), note=f"train rounds: all {len(TRAINING)} centres to server", **context)
    emit(BENCH, arms.after_training[0], round(statistics.mean(wire["after_bytes"])), "bytes",
         note=arms.after_training[2], **context)
    if args.select_round:
        emit(BENCH, "bytes_evaluate_rounds", round(statistics.mean(wire["evaluate_bytes"])), "bytes",
             note="every evaluate round together, both ways: the round's average out, pair and loss sums back",
             **context)
        emit(BENCH, "selected_round", round(statistics.mean(wire["selected_round"]), 1), "round",
             min=min(wire["selected_round"]), max=max(wire["selected_round"]), **context)
    for figure, key in (("render_and_prepare_seconds", "render_seconds"),
                        ("federated_fit_seconds", "federated_seconds"), ("pooled_fit_seconds", "pooled_seconds")):
        emit(BENCH, figure, round(statistics.mean(wire[key]), 1), "s", **context)


def span(counts: list[int]) -> str:
    """"4", or "4-6" when the seeds differ."""
    return str(min(counts)) if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    figures: dict[str, list[float]] = {}
    wire: dict[str, list[Any]] = {k: [] for k in ("render_seconds", "federated_seconds", "pooled_seconds", "rounds",
                                                   "after", "sent", "received", "after_bytes", "evaluate_bytes",
                                                   "selected_round", "cases")}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        run_seed(seed, args, figures, wire)
    report(args, figures, wire)
