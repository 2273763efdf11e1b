"""Federated Cox fusion on the phantom: validation C-index on a held-out centre, rounds and bytes.

Three training centres (A, B, C) and a held-out validation centre (D) of the phantom generator
(``plan_cohort`` with centres A,B,C,D; no images are rendered: imaging scores are the latent MRI
and pathology phenotypes plus Gaussian noise of SD ``--score-noise``, see
``sarcoma_risk.synthetic.tables``). For each seed, the combined sub-model
(clinical + radiology + pathology) is fitted

* on each training centre alone,
* federated over A, B and C (Flower, in one process through Flower's wire format:
  :class:`sarcoma_risk.federated.flower.LocalGrid`),
* pooled (the rows of A, B and C together in one Cox model, unstratified),

all with the same ridge penalizer and the same encoding (the pooled and single-centre fits are the
federated code with one "centre", i.e. an ordinary penalised Cox fit of those rows), and Harrell's C is computed on centre D. Figures are means over
``--seeds`` seeds (each seed draws new cohorts) with every seed's value, federated minus pooled and minus
each centre alone paired by seed with a 95% t interval, plus the rounds of the federated fit and the bytes
per round on the wire (server to centres, centres to server).

Run: ``.venv/bin/python benchmarks/bench_federated.py [--cases-per-centre 60] [--validation 400] [--seeds 5]``.

``--model radiology|pathology`` benchmarks a CNN the same way on a rendered phantom (each centre
alone, FedAvg, pooled; Harrell's C of the CNN's score on centre D): see ``benchmarks/federated_cnn.py``.
Run: ``.venv/bin/python benchmarks/bench_federated.py --model radiology [--train-cases 50]
[--held-out-cases 100] [--rounds 10] [--local-epochs 2] [--seeds 2]``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

from scipy.stats import t

from common import emit, machine

from sarcoma_risk.federated.flower import LocalGrid, make_client_app, make_server_app, server_context
from sarcoma_risk.federated.fusion import FederatedFusionSettings, fit_federated_fusion
from sarcoma_risk.federated import centre as centre_ops
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.survival.concordance import harrell_c
from sarcoma_risk.synthetic.tables import phantom_fusion_table

BENCH = "federated"
COMBINED = "clinical+radiology+pathology"
TRAINING = ("A", "B", "C")


def c_index(model, validation) -> float:
    risk = model.predict(validation, submodel=COMBINED)["risk"].to_numpy()
    return harrell_c(validation["time_months"].to_numpy(), validation["event"].to_numpy() > 0, risk)


def federated(parts, penalizer: float):
    client = make_client_app(lambda context: (context.node_config["centre"], parts[context.node_config["centre"]]))
    run_config = {"min-centres": len(parts), "penalizer": penalizer, "min-centre-events": 5}
    grid = LocalGrid(client, [{"centre": c} for c in parts], run_config)
    out = {}
    try:
        make_server_app(on_done=lambda model, log, rounds: out.update(model=model, rounds=rounds))(
            grid, server_context(run_config))
    finally:
        grid.close()
    return out["model"], out["rounds"]


def alone(rows, penalizer: float):
    query = lambda op, request: {"X": centre_ops.answer(rows, request)}  # noqa: E731
    model, _ = fit_federated_fusion(query, FederatedFusionSettings(penalizer=penalizer, min_centres=1,
                                                                   min_centre_events=1))
    return model


def emit_comparison(figures: dict[str, list[float]], seeds: int, context: dict) -> None:
    """Each figure's mean over seeds (worst and best seed, and every seed's value); federated minus pooled and
    federated minus each centre alone, paired by seed, with a 95% t interval of the mean difference (one C-index
    on D has a standard error of a few hundredths, so a single seed's ranking of the arms is mostly noise); and
    the number of seeds where federated beats the best single-centre model of that seed (fusion and CNN modes
    alike)."""
    for figure, values in figures.items():
        emit(BENCH, figure, round(statistics.mean(values), 4), "harrell_c",
             min=round(min(values), 4), max=round(max(values), 4), per_seed=[round(v, 4) for v in values],
             **context)
    federated = figures["c_index_federated"]
    for other in ("pooled", *(f"alone_{c}" for c in TRAINING)):
        differences = [f - o for f, o in zip(federated, figures[f"c_index_{other}"])]
        emit(BENCH, f"c_index_federated_minus_{other}", round(statistics.mean(differences), 4), "harrell_c",
             min=round(min(differences), 4), max=round(max(differences), 4), **paired_interval(differences),
             **context)
    best_alone = [max(figures[f"c_index_alone_{c}"][k] for c in TRAINING) for k in range(seeds)]
    above = sum(f > b for f, b in zip(federated, best_alone))
    emit(BENCH, "federated_above_best_single_centre", above, "seeds", of=seeds, **context)


def paired_interval(differences: list[float], level: float = 0.95) -> dict[str, float | None]:
    """The t interval of the mean of paired differences (seeds are independent draws); None with one seed."""
    if len(differences) < 2:
        return {"ci_low": None, "ci_high": None, "ci_level": level}
    half = t.ppf(0.5 + level / 2, len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
    mean = statistics.mean(differences)
    return {"ci_low": round(mean - half, 4), "ci_high": round(mean + half, 4), "ci_level": level}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("fusion", "radiology", "pathology"), default="fusion",
                        help="fusion: the Cox fusion on simulated scores; radiology: the CBAM CNN on rendered MRI; "
                             "pathology: the patch model and slide signature on rendered slides "
                             "(benchmarks/federated_cnn.py)")
    parser.add_argument("--seeds", type=int, default=None, help="default 5 (fusion), 2 (CNN)")
    fusion = parser.add_argument_group("fusion")
    fusion.add_argument("--cases-per-centre", type=int, default=60)
    fusion.add_argument("--validation", type=int, default=400, help="cases of the held-out centre D")
    fusion.add_argument("--penalizer", type=float, default=0.1)
    fusion.add_argument("--score-noise", type=float, default=0.7)
    cnn = parser.add_argument_group("CNN")
    cnn.add_argument("--train-cases", type=int, default=50, help="rendered cases in each of centres A, B and C")
    cnn.add_argument("--held-out-cases", type=int, default=100, help="rendered cases of the held-out centre D")
    cnn.add_argument("--rounds", type=int, default=10, help="FedAvg rounds")
    cnn.add_argument("--local-epochs", type=int, default=2,
                     help="epochs per round; alone and pooled train rounds x local epochs")
    cnn.add_argument("--select-round", action="store_true",
                     help="pathology: the federated arm keeps its best round on the centres' validation shares, as "
                          "the alone and pooled arms keep their best epoch")
    cnn.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed, first-seed + 1, ...")
    cnn.add_argument("--workers", type=int, default=2, help="processes rendering the phantom")
    cnn.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    if args.select_round and args.model != "pathology":
        parser.error("--select-round: only with --model pathology")
    if args.model != "fusion":
        import federated_cnn

        args.seeds = args.seeds or 2
        federated_cnn.main(args)
        return
    args.seeds = args.seeds or 5
    figures: dict[str, list[float]] = {}
    rounds_seen, sent, received, seconds = [], [], [], []
    for seed in range(args.seeds):
        n_train = args.cases_per_centre * len(TRAINING)
        # plan_cohort spreads cases evenly: draw D apart so it can be larger than the training centres
        training = phantom_fusion_table(n_train, TRAINING, seed, score_noise=args.score_noise)
        validation = phantom_fusion_table(args.validation, ("D",), seed, score_noise=args.score_noise)
        parts = {str(c): rows for c, rows in training.groupby("centre")}
        for name, rows in parts.items():
            try:
                model = alone(rows, args.penalizer)
            except InvalidInput as error:
                raise InvalidInput(f"seed {seed}: centre {name} alone: {error}\n(more --cases-per-centre)") from error
            figures.setdefault(f"c_index_alone_{name}", []).append(c_index(model, validation))
        start = time.perf_counter()
        model, rounds = federated(parts, args.penalizer)
        seconds.append(time.perf_counter() - start)
        figures.setdefault("c_index_federated", []).append(c_index(model, validation))
        pooled = alone(training, args.penalizer)  # all rows of A, B, C as one centre: the unstratified pooled fit
        figures.setdefault("c_index_pooled", []).append(c_index(pooled, validation))
        rounds_seen.append(len(rounds))
        sent += [r["bytes_sent"] for r in rounds]
        received += [r["bytes_received"] for r in rounds]
    context = {"seeds": args.seeds, "cases_per_centre": args.cases_per_centre, "validation_cases": args.validation,
               "penalizer": args.penalizer, "score_noise": args.score_noise, "submodel": COMBINED, **machine()}
    emit_comparison(figures, args.seeds, context)
    emit(BENCH, "rounds", round(statistics.mean(rounds_seen), 1), "rounds",
         note="all 7 sub-models side by side: summary, moments, the Newton iterations of the slowest, describe", **context)
    emit(BENCH, "bytes_sent_per_round", round(statistics.mean(sent)), "bytes", max=max(sent),
         note="server to all 3 centres, Flower protobuf wire size", **context)
    emit(BENCH, "bytes_received_per_round", round(statistics.mean(received)), "bytes", max=max(received),
         note="all 3 centres to server", **context)
    emit(BENCH, "federated_fit_seconds", round(statistics.mean(seconds), 2), "s", **context)


if __name__ == "__main__":
    try:
        main()
    except InvalidInput as error:  # a cohort too small for an arm: say which, without a traceback
        sys.exit(f"bench_federated: {error}")
