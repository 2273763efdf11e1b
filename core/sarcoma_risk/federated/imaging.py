"""What one centre does for the federated radiology CNN: local epochs from the server's weights, and score sums.

A round of FedAvg / FedProx at a centre (:meth:`RadiologyCentre.train_round`) is the ordinary
radiology training (:meth:`sarcoma_risk.radiology.train.RadiologyCoxModel.fit`) of ``local_epochs``
epochs on the centre's own development cases, started from the server's weights instead of fresh
ones, without early stopping (the server's rounds decide the length). FedProx adds the proximal
term ``mu / 2 * ||w - w_server||^2`` to the loss, as a gradient hook ``mu * (w - w_server)`` on
every parameter, so the trainer itself is unchanged. The reply is the trained state dict (names
and shapes of the network) and the number of cases; with differential privacy, the server's
weights plus the clipped, noised update (:mod:`sarcoma_risk.federated.privacy`).

At the end (:meth:`RadiologyCentre.scores`) the centre scores its cases with the final weights and
returns their number, their sum and a histogram on the server's grid: the server centres the
network on the pooled mean and keeps the histogram as the development score distribution.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np
import torch

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.federated.histogram import grid_histogram
from sarcoma_risk.federated.privacy import privatise
from sarcoma_risk.radiology.config import ModelConfig, PreprocessConfig, TrainConfig
from sarcoma_risk.radiology.train import RadiologyCoxModel, seeded

#: torch's random generators and deterministic switch are process-wide: centres simulated in one
#: process (``federated simulate``) train one at a time so that each round repeats exactly.
TORCH_LOCK = threading.Lock()


class CentreRefused(InvalidInput):
    """A centre that cannot take part (too few cases or events); the message names counts only."""


def state_arrays(network: torch.nn.Module) -> dict[str, np.ndarray]:
    """The network's state dict as numpy arrays (names and dtypes kept)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in network.state_dict().items()}


def load_state(network: torch.nn.Module, state: Mapping[str, np.ndarray]) -> None:
    """Load numpy arrays named as the network's state dict; a missing or extra name is an error."""
    expected = set(network.state_dict())
    if set(state) != expected:
        raise InvalidInput(f"federated weights: names differ from the network's (missing "
                           f"{sorted(expected - set(state))[:5]}, unexpected {sorted(set(state) - expected)[:5]})")
    # Flower's arrays hold a 0-d tensor (the offset) as one element: each array takes the network's shape
    template = network.state_dict()
    network.load_state_dict({k: torch.as_tensor(np.asarray(v)).reshape(template[k].shape) for k, v in state.items()})


def add_proximal_term(network: torch.nn.Module, mu: float) -> None:
    """FedProx: add ``mu * (w - w_now)`` to every parameter's gradient (``w_now``: the weights at this call)."""
    for parameter in network.parameters():
        anchor = parameter.detach().clone()
        parameter.register_hook(lambda grad, p=parameter, w0=anchor: grad + mu * (p.detach() - w0))


def start_from(network: torch.nn.Module, state: Mapping[str, np.ndarray], proximal_mu: float) -> None:
    """A round's start: the server's weights, and FedProx's proximal term when ``proximal_mu`` > 0."""
    load_state(network, state)
    if proximal_mu:
        add_proximal_term(network, proximal_mu)


def outgoing_state(state: Mapping[str, np.ndarray], new: Mapping[str, np.ndarray], dp_clip: float | None,
                   dp_noise: float) -> dict[str, np.ndarray]:
    """What a centre sends back: its new weights, or with ``dp_clip`` the server's plus the privatised update."""
    if dp_clip is None:
        return dict(new)
    floats = [k for k in new if np.issubdtype(new[k].dtype, np.floating)]
    start = {k: np.asarray(state[k], dtype=new[k].dtype).reshape(new[k].shape) for k in floats}
    noisy = privatise({k: new[k] - start[k] for k in floats}, dp_clip, dp_noise)
    return {k: (start[k] + noisy[k]).astype(new[k].dtype) if k in noisy else new[k] for k in new}


def initial_network(preprocess: PreprocessConfig, model: ModelConfig, train: TrainConfig) -> torch.nn.Module:
    """The network a pooled ``train radiology`` would start from with the same seed."""
    estimator = RadiologyCoxModel(preprocess, model, train)
    with seeded(train.seed):
        return estimator._new_network()


@dataclass
class RadiologyCentre:
    """A centre's prepared development patches and outcomes (never sent anywhere)."""

    name: str
    X: np.ndarray
    time: np.ndarray
    event: np.ndarray

    def check(self, min_events: int) -> None:
        events = int(np.sum(self.event))
        if events < min_events or len(self.X) < 2:
            raise CentreRefused(f"centre {self.name}: {len(self.X)} development case(s) with MRI and {events} "
                                f"event(s); at least {min_events} events are needed (--min-centre-events)")

    def train_round(self, state: Mapping[str, np.ndarray], preprocess: PreprocessConfig, model: ModelConfig,
                    train: TrainConfig, *, local_epochs: int, proximal_mu: float = 0.0, dp_clip: float | None = None,
                    dp_noise: float = 0.0) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Train ``local_epochs`` epochs from ``state``; returns the new state and metrics (``num-examples``)."""
        config = replace(train, epochs=local_epochs, min_epochs=0, validation_fraction=0.0)

        def prepare(network: torch.nn.Module) -> None:
            start_from(network, state, proximal_mu)
            network.offset.zero_()  # as a fresh network's: fit centres the scores from zero (no effect on the loss)

        with TORCH_LOCK:
            fitted = RadiologyCoxModel(preprocess, model, config).fit(self.X, self.time, self.event, prepare=prepare)
        new = outgoing_state(state, state_arrays(fitted.network_), dp_clip, dp_noise)
        return new, {"num-examples": float(len(self.X)), "train-loss": float(fitted.final_loss_)}

    def scores(self, state: Mapping[str, np.ndarray], preprocess: PreprocessConfig, model: ModelConfig,
               edges: np.ndarray) -> dict[str, Any]:
        """Number, sum and histogram (on ``edges``) of the raw scores (offset 0) of the centre's cases, and
        the numbers of scores below and above ``edges``."""
        estimator = RadiologyCoxModel(preprocess, model)
        network = estimator._new_network()
        load_state(network, state)
        network.offset.zero_()
        with TORCH_LOCK:
            raw = RadiologyCoxModel._raw_scores(network, estimator._check_x(self.X), 8).numpy()
        histogram, outside = grid_histogram(raw, edges)
        return {"n": float(raw.size), "sum": float(raw.sum()), "histogram": histogram, "outside": outside}
