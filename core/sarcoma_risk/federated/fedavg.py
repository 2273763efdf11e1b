"""FedAvg / FedProx of the radiology CNN and the patch model on Flower: Flower's strategies, the centres' handlers.

The server runs :class:`flwr.serverapp.strategy.FedAvg` (or ``FedProx`` with ``proximal-mu``) for
``rounds`` rounds: each round every centre receives a ``train`` message (the network's state dict
as an ``ArrayRecord`` named ``arrays``, the round's settings in a ``ConfigRecord`` named ``config``),
trains ``local-epochs`` epochs on its own cases (:mod:`sarcoma_risk.federated.imaging`,
:mod:`sarcoma_risk.federated.patchmodel`) and replies with its new state dict and a
``MetricRecord`` ``metrics`` holding ``num-examples`` (its number of cases, the averaging weight)
and ``train-loss``. Flower averages the arrays weighted by ``num-examples``. Then, for the
radiology CNN, a ``query.scores`` round asks each centre for the number, sum and histogram of its
scores under the final weights (the network's centring and development distribution); for the
patch model, ``query.signature`` rounds fit the slide signature from sums
(:mod:`sarcoma_risk.federated.signature`). With ``select-round`` (patch model), Flower's evaluate
step follows every round: each centre scores the round's average on its fixed inner validation share
and replies with pair, loss and count sums only; the server keeps the best round (:func:`best_round`).

Centres that do not reply within ``round-timeout`` are left out of that round's average (Flower's
behaviour); a round with fewer than ``min-centres`` replies stops the fit with the centres' reasons.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from sarcoma_risk import __version__
from sarcoma_risk.cohort import Split, read_manifest
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fileio import atomic_write_bytes, atomic_write_json
# federated.flower imports Flower first, once, with its import-time warnings filtered
from sarcoma_risk.federated.flower import (DECODE_LOCK, IMAGING_MESSAGES, FederatedError, MessageHook, check_sender,
                                           decode, encode, exchange, register, stamp, to_numpy, wire_size)
from sarcoma_risk.federated.histogram import warn_outside_grid
from sarcoma_risk.federated.imaging import CentreRefused, RadiologyCentre, initial_network, load_state, state_arrays
from sarcoma_risk.federated.patchmodel import PRESETS as PATCH_PRESETS
from sarcoma_risk.federated.patchmodel import (PathologyCentre, final_patch_model, initial_patch_model,
                                               load_pathology_centre)
from sarcoma_risk.federated.privacy import check_dp
from sarcoma_risk.federated.signature import answer as signature_answer
from sarcoma_risk.federated.signature import fit_federated_signature
from sarcoma_risk.pathology.crossfit import PATCH_FILE, SIGNATURE_FILE, SignatureConfig
from sarcoma_risk.pathology.model import state_bytes
from sarcoma_risk.pathology.pipeline import PATCH_KIND, PATCH_MODEL, SIGNATURE_KIND, SIGNATURE_MODEL
from sarcoma_risk.pathology.signature import SlideSignature
from sarcoma_risk.provenance import sha256_bytes, software_version
from sarcoma_risk.radiology.checkpoint import save_model
from sarcoma_risk.radiology.ensemble import RadiologyEnsemble, ReferenceSource
from sarcoma_risk.radiology.cohort import prepare_cohort
from sarcoma_risk.radiology.config import preset
from sarcoma_risk.radiology.train import RadiologyCoxModel
from sarcoma_risk.weights import WeightRegistry

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict  # noqa: I001
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp
from flwr.serverapp.strategy import FedAvg, FedProx

log = logging.getLogger(__name__)

#: Models trained with FedAvg / FedProx.
MODELS = ("radiology", "pathology")
STRATEGIES = ("fedavg", "fedprox")
#: The grid of the score histogram (log relative hazard before centring): 0.02 wide bins.
SCORE_EDGES = np.linspace(-10.0, 10.0, 1001)


@dataclass(frozen=True)
class FedAvgSettings:
    """The server's settings of a federated CNN training (Flower run-config keys in parentheses)."""

    model: str = "radiology"                  # model
    preset: str = "standard"                  # preset
    sequences: tuple[str, ...] = ()           # sequences (comma-separated; default: the preset's)
    rounds: int = 2                           # rounds
    local_epochs: int = 1                     # local-epochs
    strategy: str = "fedavg"                  # strategy
    proximal_mu: float = 0.0                  # proximal-mu
    dp_clip: float | None = None              # dp-clip (0 = off)
    dp_noise: float = 0.0                     # dp-noise
    seed: int | None = None                   # seed (default: the preset's)
    min_centres: int = 2                      # min-centres
    min_centre_events: int = 3                # min-centre-events
    round_timeout: float = 600.0              # round-timeout
    select_round: bool = False                # select-round (the patch model only)

    def check(self) -> None:
        if self.model not in MODELS:
            raise InvalidInput(f"federated model {self.model!r}: expected one of {', '.join(MODELS)}")
        if self.model == "pathology" and self.preset not in PATCH_PRESETS:
            raise InvalidInput(f"--preset {self.preset!r}: expected one of {', '.join(PATCH_PRESETS)}")
        if self.strategy not in STRATEGIES:
            raise InvalidInput(f"--strategy {self.strategy!r}: expected one of {', '.join(STRATEGIES)}")
        if self.strategy == "fedprox" and not self.proximal_mu > 0:
            raise InvalidInput(f"--proximal-mu {self.proximal_mu:g}: FedProx needs mu > 0")
        if self.strategy == "fedavg" and self.proximal_mu:
            raise InvalidInput("--proximal-mu is FedProx's; add --strategy fedprox")
        for name in ("rounds", "local_epochs", "min_centres"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"--{name.replace('_', '-')}: {getattr(self, name)} must be >= 1")
        check_dp(self.dp_clip, self.dp_noise)
        if self.select_round and self.model != "pathology":
            raise InvalidInput("--select-round: only the patch model (--model pathology) keeps an inner validation "
                               "share to pick a round on; the radiology CNN's rounds train without early stopping")

    def initial_state(self) -> dict[str, np.ndarray]:
        """The weights of round 1: those a pooled training of the same seed starts from."""
        configs = self.configs()
        network = initial_patch_model(configs[0]) if self.model == "pathology" else initial_network(*configs)
        return state_arrays(network)

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any]) -> "FedAvgSettings":
        d = cls()
        clip = float(config.get("dp-clip", 0.0) or 0.0)
        seed = config.get("seed")
        settings = cls(
            model=str(config.get("model", d.model)), preset=str(config.get("preset", d.preset)),
            sequences=tuple(s for s in str(config.get("sequences", ",".join(d.sequences))).split(",") if s),
            rounds=int(config.get("rounds", d.rounds)), local_epochs=int(config.get("local-epochs", d.local_epochs)),
            strategy=str(config.get("strategy", d.strategy)), proximal_mu=float(config.get("proximal-mu", 0.0)),
            dp_clip=clip or None, dp_noise=float(config.get("dp-noise", 0.0)),
            seed=None if seed in (None, "", -1) else int(seed), min_centres=int(config.get("min-centres", d.min_centres)),
            min_centre_events=int(config.get("min-centre-events", d.min_centre_events)),
            round_timeout=float(config.get("round-timeout", d.round_timeout)),
            select_round=str(config.get("select-round", d.select_round)).lower() in ("true", "1"))
        settings.check()
        return settings

    def configs(self) -> tuple:
        """The model's configurations: radiology (preprocess, model, train), pathology (train,); train last."""
        if self.model == "pathology":
            train = PATCH_PRESETS[self.preset]
            return (train if self.seed is None else replace(train, seed=self.seed),)
        pre, model, train = preset(self.preset)
        return (replace(pre, sequences=self.sequences) if self.sequences else pre, model,
                train if self.seed is None else replace(train, seed=self.seed))

    def message_config(self) -> dict[str, Any]:
        """What every centre needs to train a round like the others (sent in each ``train`` message)."""
        configs = self.configs()
        return {"model": self.model, "preset": self.preset,
                "sequences": ",".join(configs[0].sequences) if self.model == "radiology" else "",
                "local-epochs": self.local_epochs, "seed": configs[-1].seed,
                "dp-clip": float(self.dp_clip or 0.0), "dp-noise": float(self.dp_noise),
                "min-centre-events": self.min_centre_events, "select-round": self.select_round}


def to_record(state: Mapping[str, np.ndarray]):
    """A state dict as Flower's ArrayRecord (names, shapes and dtypes kept)."""
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in state.items()})


def from_record(record) -> dict[str, np.ndarray]:
    return {k: to_numpy(a) for k, a in record.items()}


# ---- the centres' side ----------------------------------------------------------------------------

CentreLoader = Callable[[Any, FedAvgSettings], "RadiologyCentre | PathologyCentre"]


def manifest_centre_loader(context, settings: FedAvgSettings) -> RadiologyCentre | PathologyCentre:
    """A centre's development cases from its node config (``manifest``, ``centre``), prepared as the server says."""
    config = context.node_config
    for key in ("manifest", "centre"):
        if not str(config.get(key, "")).strip():
            raise InvalidInput(f"federated client: node config {key!r} is missing")
    if settings.model == "pathology":
        return load_pathology_centre(Path(str(config["manifest"])), str(config["centre"]))
    preprocess = settings.configs()[0]
    manifest = read_manifest(Path(str(config["manifest"])))
    name = str(config["centre"])
    cases = [c for c in manifest.cases if c.centre == name and c.split is Split.DEVELOPMENT]
    if not cases:
        raise CentreRefused(f"centre {name}: no development case in its manifest")
    sequences = preprocess.sequences
    patches = prepare_cohort(cases, preprocess, sequences)
    usable = patches.select(Split.DEVELOPMENT, sequences)  # the cases with every sequence of the run's set
    if not usable.size:
        raise CentreRefused(f"centre {name}: no development case with readable MRI of {' and '.join(sequences)}")
    return RadiologyCentre(name, patches.stack(usable, sequences, preprocess.mask_channel),
                           np.asarray(patches.time, dtype=float)[usable], np.asarray(patches.event, dtype=bool)[usable])


def make_imaging_client_app(load_centre: CentreLoader = manifest_centre_loader):
    """A ClientApp answering the federated CNN's messages (:func:`add_imaging_handlers`)."""
    app = ClientApp()
    add_imaging_handlers(app, load_centre)
    return app


def add_imaging_handlers(app, load_centre: CentreLoader = manifest_centre_loader) -> None:
    """Register the handlers of the federated CNN's messages (:func:`imaging_handlers`) on a ClientApp."""
    for kind, handle in imaging_handlers(load_centre).items():
        register(app, kind, handle)


def imaging_handlers(load_centre: CentreLoader = manifest_centre_loader) -> dict[str, Callable[[Any, Any], Message]]:
    """The centre's handler of each of :data:`~sarcoma_risk.federated.flower.IMAGING_MESSAGES`, sharing one
    cache of loaded centres."""
    cache: dict[tuple[int, str], RadiologyCentre | PathologyCentre] = {}
    lock = threading.Lock()

    def centre_for(context, config) -> tuple[RadiologyCentre | PathologyCentre, tuple]:
        settings = FedAvgSettings(model=str(config["model"]), preset=str(config["preset"]),
                                  sequences=tuple(s for s in str(config["sequences"]).split(",") if s))
        key = (context.node_id, f"{config['model']}/{config['preset']}/{config['sequences']}")
        with lock:
            if key not in cache:
                cache[key] = load_centre(context, settings)
        return cache[key], settings.configs()

    def guarded(kind: str, work: Callable[[Any, Any], RecordDict]):
        def handle(message, context):
            name = str(context.node_config.get("centre", context.node_id))
            check_sender(message.content, "the server")
            try:
                content = work(message, context)
            except CentreRefused as exc:  # its message names counts only: the server may read it
                raise FederatedError(str(exc)) from None
            except Exception as exc:
                log.error("centre %s: %s", name, exc)
                raise FederatedError(f"centre {name}: {type(exc).__name__} while answering {kind} "
                                     "(details in that centre's log)") from None
            return Message(stamp(content), reply_to=message)
        return handle

    def train(message, context) -> RecordDict:
        config = dict(message.content.config_records["config"])
        centre, configs = centre_for(context, config)
        centre.check(int(config["min-centre-events"]))
        # round r trains with seed + r - 1: round 1 is exactly the pooled training's start
        configs = (*configs[:-1], replace(configs[-1], seed=int(config["seed"]) + int(config["server-round"]) - 1))
        clip = float(config.get("dp-clip", 0.0))
        # round selection: every round keeps the share of the run's seed, which the evaluate rounds score
        selection = {"validation_seed": int(config["seed"])} if config.get("select-round") else {}
        state, metrics = centre.train_round(
            from_record(message.content.array_records["arrays"]), *configs,
            local_epochs=int(config["local-epochs"]), proximal_mu=float(config.get("proximal-mu", 0.0)),
            dp_clip=clip or None, dp_noise=float(config.get("dp-noise", 0.0)), **selection)
        return RecordDict({"arrays": to_record(state), "metrics": MetricRecord(metrics)})

    def evaluate(message, context) -> RecordDict:
        config = dict(message.content.config_records["config"])
        centre, configs = centre_for(context, config)  # pathology only (select-round)
        sums = centre.evaluate_round(from_record(message.content.array_records["arrays"]), configs[0],
                                     int(config["seed"]))
        return RecordDict({"metrics": MetricRecord(sums)})

    def scores(message, context) -> RecordDict:
        config = dict(message.content.config_records["config"])
        centre, (pre, model, _) = centre_for(context, config)  # radiology only
        arrays = message.content.array_records
        answer = centre.scores(from_record(arrays["arrays"]), pre, model, to_numpy(arrays["grid"]["edges"]))
        return RecordDict({"config": ConfigRecord({"n": answer["n"], "sum": answer["sum"]}),
                           "arrays": ArrayRecord({"histogram": Array(answer["histogram"]),
                                                  "outside": Array(answer["outside"])})})

    def signature(message, context) -> RecordDict:
        request = decode(message.content)
        centre, configs = centre_for(context, request)  # pathology only
        model = message.content.array_records.get("model")
        cases = centre.signature_cases(from_record(model) if model is not None else None,
                                       str(request["model_sha256"]), configs[0], int(request["n_bins"]),
                                       int(request["n_words"]))
        return encode(signature_answer(cases, request))

    handlers = {"train": train, "evaluate": evaluate, "query.scores": scores, "query.signature": signature}
    return {kind: guarded(kind, handlers[kind]) for kind in IMAGING_MESSAGES}


# ---- the server's side ----------------------------------------------------------------------------

class WatchedGrid:
    """A Flower Grid seen through: every message to ``on_message``, bytes per round, at least ``min_centres`` replies.

    It stamps what it sends with this release's message format and refuses a reply of another format.
    """

    def __init__(self, grid, min_centres: int, on_message: MessageHook | None = None) -> None:
        self.grid, self.min_centres, self.on_message = grid, min_centres, on_message
        self.rounds: list[dict[str, Any]] = []
        self.dropped: set[int] = set()

    def __getattr__(self, name: str):  # the rest of Grid's interface, unchanged
        return getattr(self.grid, name)

    def get_node_ids(self):
        return list(self.grid.get_node_ids())

    def live_nodes(self) -> list[int]:
        """The nodes that have answered every round so far (the after-training rounds ask only them)."""
        return [n for n in self.get_node_ids() if n not in self.dropped]

    def send_and_receive(self, messages, *, timeout: float | None = None):
        messages = list(messages)
        if not messages:  # the strategy's skipped evaluation rounds (fraction_evaluate 0)
            return []
        sent = 0
        for m in messages:
            stamp(m.content)
            size = wire_size(m)
            sent += size
            if self.on_message:
                self.on_message("sent", m, size)
        # By node, not as they arrived nor as the strategy sampled the nodes: FedAvg sums the replies' float32
        # weights in this order, and another order changes the last bits, which training makes a different model.
        replies = sorted(exchange(self.grid, messages, timeout=timeout), key=lambda r: r.metadata.src_node_id)
        received = 0
        for r in replies:
            size = wire_size(r)
            received += size
            if self.on_message:
                self.on_message("received", r, size)
        answered = {r.metadata.src_node_id for r in replies}
        self.dropped |= {m.metadata.dst_node_id for m in messages} - answered
        good = [r for r in replies if not r.has_error()]
        for r in good:
            check_sender(r.content, f"the centre on node {r.metadata.src_node_id}")
        kind = messages[0].metadata.message_type
        examples = sum(float(r.content.metric_records["metrics"]["num-examples"]) for r in good
                       if "metrics" in r.content.metric_records)
        self.rounds.append({"type": kind, "nodes": len(messages), "replies": len(good), "examples": int(examples),
                            "bytes_sent": sent, "bytes_received": received})
        if len(good) < self.min_centres:
            reasons = "; ".join(r.error.reason for r in replies if r.has_error()) or "no reply in time"
            raise FederatedError(f"federated {kind} round {len(self.rounds)}: {len(good)} centre(s) answered; need "
                                 f"{self.min_centres} (--min-centres). {reasons}")
        return replies


class AggregationUnderDecodeLock:
    """Flower's ``aggregate_train`` decodes every reply's arrays; here one thread at a time, as the centres do.

    In ``simulate`` a centre that timed out may still be decoding in its thread while the server averages.
    """

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        with DECODE_LOCK:
            return super().aggregate_train(server_round, replies)


class LockedFedAvg(AggregationUnderDecodeLock, FedAvg):
    """Flower's FedAvg, aggregating under the decode lock."""


class LockedFedProx(AggregationUnderDecodeLock, FedProx):
    """Flower's FedProx, aggregating under the decode lock."""


@dataclass
class FedAvgResult:
    """The federated model and how it was trained."""

    model: Any  # RadiologyCoxModel, or the patch model (torch module)
    settings: FedAvgSettings
    rounds: list[dict[str, Any]]
    train_loss: list[float]
    n_cases: int
    centres: int
    dropped_out: int
    signature: SlideSignature | None = None  # with the patch model: fitted from the centres' sums
    selected_round: int | None = None  # with select-round: the round whose average was kept
    round_validation: list[dict[str, Any]] | None = None  # with select-round: each round's pooled figures


def run_fedavg(grid, run_config: Mapping[str, Any], on_message: MessageHook | None = None) -> FedAvgResult:
    """Train the CNN of ``run_config["model"]`` with Flower's FedAvg / FedProx over ``grid``; returns the model."""
    settings = FedAvgSettings.from_run_config(run_config)
    watched = WatchedGrid(grid, settings.min_centres, on_message)
    common = {"fraction_train": 1.0, "fraction_evaluate": 1.0 if settings.select_round else 0.0,
              "min_train_nodes": settings.min_centres, "min_evaluate_nodes": settings.min_centres,
              "min_available_nodes": settings.min_centres, "evaluate_metrics_aggr_fn": sum_metrics}
    strategy = LockedFedProx(proximal_mu=settings.proximal_mu, **common) if settings.strategy == "fedprox" \
        else LockedFedAvg(**common)
    averages: dict[int, ArrayRecord] = {}  # each round's average, by round (kept for round selection)
    result = strategy.start(grid=watched, initial_arrays=to_record(settings.initial_state()),
                            num_rounds=settings.rounds, timeout=settings.round_timeout,
                            train_config=ConfigRecord(settings.message_config()),
                            evaluate_config=ConfigRecord(settings.message_config()),
                            evaluate_fn=(lambda r, arrays: averages.__setitem__(r, arrays)) if settings.select_round
                            else None)
    losses = [float(m["train-loss"]) for _, m in sorted(result.train_metrics_clientapp.items())]
    last = next(r for r in reversed(watched.rounds) if r["type"] == "train")
    if settings.model == "pathology":
        selected, validation = (None, None) if not settings.select_round else \
            best_round(result.evaluate_metrics_clientapp)
        final = from_record(averages[selected] if selected is not None else result.arrays)
        model = final_patch_model(settings.configs()[0], final)
        signature = _federated_signature(watched, final, sha256_bytes(state_bytes(model)), settings)
        return FedAvgResult(model, settings, watched.rounds, losses, last["examples"], last["replies"],
                            len(watched.dropped), signature, selected, validation)
    final = from_record(result.arrays)
    estimator, centres = _centred_radiology(watched, final, settings)
    return FedAvgResult(estimator, settings, watched.rounds, losses, len(estimator.reference_scores_), centres,
                        len(watched.dropped))


def sum_metrics(contents: list[RecordDict], weighted_by_key: str) -> MetricRecord:
    """The evaluate rounds' aggregate: the centres' sums added (pairs, losses, counts), not averaged."""
    keys = contents[0].metric_records["metrics"].keys()
    return MetricRecord({k: float(sum(float(c.metric_records["metrics"][k]) for c in contents)) for k in keys})


def best_round(evaluated: Mapping[int, MetricRecord]) -> tuple[int, list[dict[str, Any]]]:
    """The round whose average scores best on the centres' validation shares, and every round's figures.

    As ``train pathology`` picks an epoch: the higher Harrell's C (pairs within centres, summed) decides,
    the lower mean patch log-loss among equal C; a later round only when strictly better.
    """
    figures, best, best_key = [], 0, None
    for r in sorted(evaluated):
        m = evaluated[r]
        c = m["concordant"] / m["comparable"] if m["comparable"] > 0 else None
        loss = m["loss-sum"] / m["loss-patches"] if m["loss-patches"] > 0 else None
        figures.append({"round": r, "c_index": c, "loss": loss, "cases": int(m["num-examples"])})
        key = (-math.inf if c is None else c, -math.inf if loss is None else -loss)
        if best_key is None or key > best_key:
            best, best_key = r, key
    if not figures:
        raise FederatedError("round selection: no evaluate round was answered")
    return best, figures


def _federated_signature(watched: WatchedGrid, final: Mapping[str, np.ndarray], model_sha256: str,
                         settings: FedAvgSettings) -> SlideSignature:
    """The slide signature of the final patch model from the centres' sums (``query.signature`` rounds).

    The first request carries the patch model; each centre tiles its slides with it once and answers
    every later request from its cached counts.
    """
    config = SignatureConfig()
    sent_model = []

    def query(op: str, request: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
        records = encode({**settings.message_config(), **request, "model_sha256": model_sha256})
        content = RecordDict({"config": records.config_records["config"], "arrays": records.array_records["arrays"]}
                             | ({} if sent_model else {"model": to_record(final)}))
        sent_model.append(True)
        replies = watched.send_and_receive(
            [Message(content, dst_node_id=n, message_type="query.signature") for n in watched.live_nodes()],
            timeout=settings.round_timeout)
        return {str(r.metadata.src_node_id): decode(r.content) for r in replies if not r.has_error()}

    return fit_federated_signature(query, SlideSignature(config.n_bins, config.n_words, config.penalizer))


def _centred_radiology(watched: WatchedGrid, final: Mapping[str, np.ndarray], settings: FedAvgSettings):
    """The last round: each centre's score count, sum and histogram under the final weights; the fitted model."""
    pre, model_config, train = settings.configs()
    content = RecordDict({"config": ConfigRecord(settings.message_config()),
                          "arrays": to_record(final), "grid": ArrayRecord({"edges": Array(SCORE_EDGES)})})
    replies = [r for r in watched.send_and_receive(
        [Message(content, dst_node_id=n, message_type="query.scores") for n in watched.live_nodes()],
        timeout=settings.round_timeout) if not r.has_error()]
    n = sum(float(r.content.config_records["config"]["n"]) for r in replies)
    mean = sum(float(r.content.config_records["config"]["sum"]) for r in replies) / n
    histogram = sum(to_numpy(r.content.array_records["arrays"]["histogram"]) for r in replies)
    warn_outside_grid("radiology score", sum(to_numpy(r.content.array_records["arrays"]["outside"]) for r in replies),
                      SCORE_EDGES)
    estimator = RadiologyCoxModel(pre, model_config, train)
    network = estimator._new_network()
    load_state(network, final)
    network.offset.fill_(mean)
    network.eval()
    estimator.network_ = network
    bin_centres = 0.5 * (SCORE_EDGES[:-1] + SCORE_EDGES[1:])
    estimator.reference_scores_ = np.sort(np.repeat(bin_centres, histogram.astype(int)) - mean)
    return estimator, len(replies)


def training_data(result: FedAvgResult) -> dict[str, Any]:
    """The ``federated`` part of the registry entry's ``training_data``: how the weights were trained."""
    s = result.settings
    strategy = "FedAvg" if s.strategy == "fedavg" else f"FedProx (mu {s.proximal_mu:g})"
    return {
        "engine": f"flwr {version('flwr')}",
        "strategy": f"{strategy}, weighted by each centre's number of cases, {s.local_epochs} local epoch(s) a round",
        "rounds": s.rounds, "centres": result.centres, "dropped_out": result.dropped_out,
        "differential_privacy": None if s.dp_clip is None else {"clip": s.dp_clip, "noise_multiplier": s.dp_noise,
                                                                 "epsilon": None},
        "bytes_sent": int(sum(r["bytes_sent"] for r in result.rounds)),
        "bytes_received": int(sum(r["bytes_received"] for r in result.rounds)),
        "train_loss": result.train_loss,
        **({} if result.selected_round is None else {
            "selected_round": result.selected_round,
            "selected_by": "Harrell's C of the mean patch probability on each centre's inner validation share "
                           "(pairs within centres, summed), then the lower patch log-loss",
            "round_validation": result.round_validation}),
    }


def write_federated_model(out: Path, result: FedAvgResult, run_config: Mapping[str, Any]) -> dict[str, Any]:
    """The weights file registered in ``out/manifest.json`` as ``train radiology|pathology`` does; returns the entry."""
    s = result.settings
    if s.model == "pathology":
        entry = _write_patch_model(out, result)
    else:
        # One federated model, not a mean of fold models; its reference scores are the centres' histogram.
        deployed = RadiologyEnsemble([result.model], result.model.reference_scores_, ReferenceSource.IN_SAMPLE)
        entry = save_model(deployed, out, version=f"{__version__}+federated",
                           training_data={"split": Split.DEVELOPMENT.value, "n": result.n_cases,
                                          "sequences": list(s.configs()[0].sequences),
                                          "federated": training_data(result)},
                           validation={})
    atomic_write_json(out / f"federated_{s.model}_run.json",
                      {"run_config": {k: v for k, v in run_config.items()}, "rounds": result.rounds,
                       "weights_sha256": entry["sha256"]})
    return entry


def _write_patch_model(out: Path, result: FedAvgResult) -> dict[str, Any]:
    """``pathology-patch.pt`` and ``pathology-signature.json`` with the registry entries ``train pathology`` writes."""
    config = result.settings.configs()[0]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / PATCH_FILE, state_bytes(result.model))
    registry = WeightRegistry(out)
    entry = registry.register(
        PATCH_MODEL, PATCH_FILE, kind=PATCH_KIND, version=software_version(),
        config={"architecture": config.architecture, "patch_px": config.patch_px, "spacing_um": config.spacing_um,
                "horizon_months": config.horizon_months,
                "label": f"recurrence within {config.horizon_months:g} months", "normalisation": "imagenet",
                "training": config.to_dict()},
        training_data={"n_development_cases": result.n_cases, "horizon_months": config.horizon_months,
                       "federated": training_data(result)},
        validation={})
    signature = result.signature
    atomic_write_json(out / SIGNATURE_FILE, signature.to_dict())
    registry.register(SIGNATURE_MODEL, SIGNATURE_FILE, kind=SIGNATURE_KIND, version=software_version(),
                      config={"n_bins": signature.n_bins, "n_words": signature.n_words,
                              "penalizer": signature.penalizer, "l1_ratio": signature.l1_ratio,
                              "patch_model_sha256": entry["sha256"],
                              "fitted_on": "in-sample tile scores of the federated patch model, from per-centre sums "
                                           "(Cox stratified by centre)"},
                      training_data={"n_development_cases": signature.n_cases_, "events": signature.n_events_,
                                     "federated": training_data(result)},
                      validation={"training_concordance": signature.concordance_})
    return entry


def make_fedavg_server_app(on_message: MessageHook | None = None,
                           on_done: Callable[[FedAvgResult], None] | None = None):
    """A ServerApp training the CNN federated and writing it where the run config says (``out``)."""
    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        result = run_fedavg(grid, context.run_config, on_message)
        if context.run_config.get("out"):
            write_federated_model(Path(str(context.run_config["out"])), result, context.run_config)
        if on_done is not None:
            on_done(result)

    return app
