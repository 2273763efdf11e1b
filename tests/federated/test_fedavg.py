"""FedAvg / FedProx of the radiology CNN on Flower: equal to local training for one centre, weighted by cases,
and every message holds only the network's state dict, counts and score aggregates."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import numpy as np
import pytest

from sarcoma_risk.federated.fedavg import (SCORE_EDGES, FedAvgSettings, LockedFedAvg, LockedFedProx, from_record,
                                           to_record)
from sarcoma_risk import __version__
from sarcoma_risk.federated.flower import PROTOCOL, FederatedError
from sarcoma_risk.federated.imaging import initial_network, state_arrays
from sarcoma_risk.federated.privacy import update_norm
from sarcoma_risk.radiology.config import preset
from sarcoma_risk.radiology.train import RadiologyCoxModel

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict  # noqa: I001
from flwr.serverapp.strategy import FedAvg

from .conftest import assert_sender, simulate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_one_centre_for_one_round_of_fedavg_trains_exactly_the_local_model_of_the_same_seed(mri_centres):
    centre = mri_centres["A"]
    federated = simulate({"A": centre}, {"min-centres": 1, "rounds": 1, "local-epochs": 2, "seed": 3})
    pre, model, train = preset("tiny")
    local = RadiologyCoxModel(pre, model, replace(train, epochs=2, min_epochs=0, validation_fraction=0.0, seed=3))
    local.fit(centre.X, centre.time, centre.event)
    fed_state, local_state = state_arrays(federated.model.network_), state_arrays(local.network_)
    assert set(fed_state) == set(local_state)
    for name in local_state:
        if name != "offset":  # the centring: the pooled mean from sums, as the local fit's mean
            np.testing.assert_array_equal(fed_state[name], local_state[name], err_msg=name)
    np.testing.assert_allclose(fed_state["offset"], local_state["offset"], atol=1e-5)
    np.testing.assert_allclose(federated.model.predict(centre.X), local.predict(centre.X), atol=1e-5)
    # the trained weights moved away from where both started
    start = state_arrays(initial_network(pre, model, replace(train, seed=3)))
    assert any(not np.array_equal(start[k], local_state[k]) for k in local_state if k != "offset")


def _reply(arrays: dict, count: float, node: int):
    sent = Message(RecordDict({}), dst_node_id=node, message_type="train")
    sent.metadata.__dict__["_message_id"] = f"m{node}"  # a delivered message has an id to reply to
    reply = Message(RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                                "metrics": MetricRecord({"num-examples": count})}), reply_to=sent)
    return reply


def test_flowers_fedavg_averages_hand_made_weights_by_each_centres_number_of_cases():
    a = {"w": np.array([1.0, 2.0, 3.0], dtype=np.float32), "b": np.array([[0.0, 4.0]], dtype=np.float32)}
    b = {"w": np.array([4.0, -1.0, 0.0], dtype=np.float32), "b": np.array([[2.0, 0.0]], dtype=np.float32)}
    averaged, _ = FedAvg().aggregate_train(1, [_reply(a, 10.0, 1), _reply(b, 30.0, 2)])
    out = from_record(averaged)
    np.testing.assert_allclose(out["w"], [3.25, -0.25, 0.75])  # (10 a + 30 b) / 40, not the plain mean
    np.testing.assert_allclose(out["b"], [[1.5, 1.0]])
    assert out["w"].dtype == np.float32


@pytest.mark.parametrize("sent_to", [(3, 1, 2), (2, 3, 1), (1, 2, 3)])
def test_the_server_takes_the_replies_in_node_order_not_as_they_arrive_or_were_sent(sent_to):
    # FedAvg sums the float32 weights in reply order, and Flower samples the nodes of a round in random order:
    # either order would make a seeded run irreproducible.
    from flwr.clientapp import ClientApp

    from sarcoma_risk.federated.fedavg import WatchedGrid
    from sarcoma_risk.federated.flower import LocalGrid, stamp

    app = ClientApp()

    @app.train()
    def train(message, context):
        time.sleep(0.3 * (3 - context.node_id))  # node 3 answers first, node 1 last
        return Message(stamp(RecordDict({"metrics": MetricRecord({"num-examples": 1.0})})), reply_to=message)

    grid = LocalGrid(app, [{"centre": c} for c in "ABC"], {})
    try:
        messages = [grid.create_message(RecordDict({}), "train", node, group_id="1") for node in sent_to]
        replies = WatchedGrid(grid, min_centres=3).send_and_receive(messages, timeout=30)
    finally:
        grid.close()
    assert [r.metadata.src_node_id for r in replies] == [1, 2, 3]


def _count_concurrent_header_parses(monkeypatch) -> dict:
    """Wrap ast.literal_eval (Flower's Array.numpy() parses the .npy header with it) to record overlaps."""
    import ast
    import threading

    real, guard, seen = ast.literal_eval, threading.Lock(), {"active": 0, "peak": 0, "threads": set()}

    def literal_eval(text):
        with guard:
            seen["active"] += 1
            seen["peak"] = max(seen["peak"], seen["active"])
            seen["threads"].add(threading.get_ident())
        time.sleep(0.001)  # time for another thread to come in, were it not kept out
        try:
            return real(text)
        finally:
            with guard:
                seen["active"] -= 1

    monkeypatch.setattr(ast, "literal_eval", literal_eval)
    return seen


def test_no_two_centres_of_the_in_process_grid_decode_an_array_at_once(mri_centres, monkeypatch):
    # CPython 3.11 cannot run ast.literal_eval in two threads at once ("SystemError: AST constructor recursion
    # depth mismatch"); LocalGrid's centres are threads.
    seen = _count_concurrent_header_parses(monkeypatch)
    simulate(mri_centres, {"min-centres": 3, "rounds": 1})
    assert len(seen["threads"]) >= 3 and seen["peak"] == 1


@pytest.mark.parametrize("strategy", [LockedFedAvg, lambda: LockedFedProx(proximal_mu=0.1)], ids=["fedavg", "fedprox"])
def test_the_server_averages_while_no_centre_thread_decodes(strategy, monkeypatch):
    # A centre that timed out may still decode in its thread while Flower's aggregation decodes the replies.
    import threading

    a = {f"w{i}": np.full(3, float(i), dtype=np.float32) for i in range(20)}
    replies = [_reply(a, 10.0, 1), _reply({k: -v for k, v in a.items()}, 30.0, 2)]
    late, stop = to_record(a), threading.Event()
    seen = _count_concurrent_header_parses(monkeypatch)

    def late_centre():
        while not stop.is_set():
            from_record(late)

    thread = threading.Thread(target=late_centre)
    thread.start()
    try:
        for _ in range(3):
            averaged, _ = strategy().aggregate_train(1, replies)
    finally:
        stop.set()
        thread.join()
    np.testing.assert_allclose(from_record(averaged)["w4"], [-2.0] * 3)  # (10 * 4 + 30 * -4) / 40
    assert len(seen["threads"]) == 2 and seen["peak"] == 1


def test_a_seeded_federated_run_repeats_exactly(mri_centres):
    config = {"min-centres": 3, "rounds": 3, "local-epochs": 1, "seed": 5}  # Flower samples each round's nodes anew
    first, second = (state_arrays(simulate(mri_centres, config).model.network_) for _ in range(2))
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


# What may travel in the federated CNN's messages: config keys, and arrays named and shaped as the network's state.
CONFIG = r"model|preset|sequences|local-epochs|seed|dp-clip|dp-noise|min-centre-events|select-round|server-round|proximal-mu"


def test_every_fedavg_message_holds_only_the_networks_state_dict_counts_and_score_aggregates(mri_centres):
    messages = []
    result = simulate(mri_centres, {"min-centres": 3, "rounds": 2, "local-epochs": 1, "strategy": "fedprox",
                                    "proximal-mu": 0.1},
                      on_message=lambda direction, m, size: messages.append((direction, m.metadata.message_type, m)))
    pre, model, train = preset("tiny")
    # the network's state dict (Flower holds the 0-d offset as one element)
    shapes = {k: v.shape or (1,) for k, v in state_arrays(initial_network(pre, model, train)).items()}
    sizes = {len(c.X) for c in mri_centres.values()}
    assert [(d, t) for d, t, _ in messages].count(("sent", "train")) == 2 * 3
    assert [(d, t) for d, t, _ in messages].count(("received", "query.scores")) == 3
    for direction, kind, message in messages:
        content = message.content
        assert_sender(content)
        for key in content.config_records.get("config", {}):
            assert re.fullmatch(CONFIG if direction == "sent" else r"n|sum", key), f"{direction} {kind}: {key}"
        if kind == "train":
            assert set(content.array_records) == {"arrays"}
            state = from_record(content.array_records["arrays"])
            assert {k: v.shape for k, v in state.items()} == shapes, f"{direction} {kind}"
            if direction == "received":
                assert set(content.config_records) == {"sender"}
                metrics = dict(content.metric_records["metrics"])
                assert set(metrics) == {"num-examples", "train-loss"} and metrics["num-examples"] in sizes
            else:
                assert not content.metric_records and content.config_records["config"]["proximal-mu"] == 0.1
        else:
            assert kind == "query.scores" and not content.metric_records
            arrays = {name: from_record(r) for name, r in content.array_records.items()}
            if direction == "sent":
                assert {k: v.shape for k, v in arrays["arrays"].items()} == shapes
                assert set(arrays) == {"arrays", "grid"} and arrays["grid"]["edges"].shape == SCORE_EDGES.shape
            else:  # a histogram on the server's grid: its size is the grid's, not a number of cases
                assert {k: v.shape for k, v in arrays["arrays"].items()} == {"histogram": (SCORE_EDGES.size - 1,),
                                                                        "outside": (2,)}
                assert dict(content.config_records["config"])["n"] in sizes
    assert result.n_cases == sum(sizes) and result.centres == 3 and len(result.rounds) == 3
    assert all(r["bytes_sent"] > 0 and r["bytes_received"] > 0 for r in result.rounds)


def test_fedprox_keeps_a_centres_weights_closer_to_the_servers_than_fedavg(mri_centres):
    centre = mri_centres["B"]
    pre, model, train = preset("tiny")
    start = state_arrays(initial_network(pre, model, train))

    def moved(mu: float) -> float:
        state, _ = centre.train_round(start, pre, model, train, local_epochs=2, proximal_mu=mu)
        return update_norm({k: state[k] - start[k] for k in start if k != "offset"})

    assert moved(50.0) < 0.8 * moved(0.0)


def test_differential_privacy_bounds_what_a_centre_sends_and_its_noise_changes_it(mri_centres):
    centre = mri_centres["C"]
    pre, model, train = preset("tiny")
    start = state_arrays(initial_network(pre, model, train))

    def update(**dp):
        state, _ = centre.train_round(start, pre, model, train, local_epochs=1, **dp)
        return {k: state[k].astype(np.float64) - start[k] for k in start if np.issubdtype(start[k].dtype, np.floating)}

    plain = update()
    clip = 0.25 * update_norm(plain)
    clipped = update(dp_clip=clip)
    assert update_norm(clipped) == pytest.approx(clip, rel=1e-4)
    # clipping scales the update; it does not turn it
    flat = lambda u: np.concatenate([v.ravel() for v in u.values()])  # noqa: E731
    np.testing.assert_allclose(flat(clipped), flat(plain) * clip / update_norm(plain), atol=1e-6)
    noisy = update(dp_clip=clip, dp_noise=1.0)
    noise = flat(noisy) - flat(clipped)
    assert np.std(noise) == pytest.approx(clip, rel=0.05)  # SD noise * clip on every coordinate


def test_a_centre_counts_the_scores_beyond_the_servers_histogram_grid(mri_centres):
    centre = mri_centres["A"]
    pre, model, train = preset("tiny")
    state = state_arrays(initial_network(pre, model, train))
    fine = np.linspace(-1.0, 1.0, 200_001)  # an untrained network's scores lie close together
    full = centre.scores(state, pre, model, fine)
    counts = full["histogram"]
    middle = int(np.searchsorted(np.cumsum(counts), counts.sum() / 2))  # the bin of the median score
    answer = centre.scores(state, pre, model, fine[middle:middle + 2])  # a grid of that one bin
    np.testing.assert_array_equal(answer["outside"], [counts[:middle].sum(), counts[middle + 1:].sum()])
    assert answer["outside"].sum() > 0
    assert answer["histogram"].tolist() == [full["n"]]  # the scores outside are still counted, in the end bins
    np.testing.assert_array_equal(full["outside"], [0, 0])


def test_a_centre_with_too_few_events_is_refused_with_a_message_naming_it_and_its_count(mri_centres):
    thin = replace(mri_centres["C"], event=np.zeros(len(mri_centres["C"].X), dtype=bool))
    with pytest.raises(FederatedError, match=r"1 centre\(s\) answered; need 2 .*centre C: 6 development case\(s\) "
                                             r"with MRI and 0 event\(s\); at least 3 events are needed"):
        simulate({"A": mri_centres["A"], "C": thin}, {"min-centres": 2, "rounds": 1})


def test_a_centre_of_another_message_format_stops_federated_training_naming_both_releases(mri_centres):
    def newer_release(client):
        def handle(message, context):
            reply = client(message, context)
            if context.node_config["centre"] == "C":
                reply.content["sender"] = ConfigRecord({"protocol": PROTOCOL + 1, "release": "9.0.0"})
            return reply
        return handle

    with pytest.raises(FederatedError, match=rf"^the centre on node 3 runs sarcoma-risk 9\.0\.0 \(message format "
                                             rf"{PROTOCOL + 1}\); this side runs sarcoma-risk "
                                             rf"{re.escape(__version__)} \(message format {PROTOCOL}\); the server "
                                             rf"and every centre must run the same SarcomaRisk release$"):
        simulate(mri_centres, {"min-centres": 3, "rounds": 1}, wrap=newer_release)


def test_fedavg_settings_refuse_a_proximal_term_without_fedprox_and_noise_without_a_clip():
    with pytest.raises(ValueError, match="--proximal-mu is FedProx's; add --strategy fedprox"):
        FedAvgSettings.from_run_config({"proximal-mu": 0.1})
    with pytest.raises(ValueError, match="--dp-noise 1 needs --dp-clip"):
        FedAvgSettings.from_run_config({"dp-noise": 1.0})
    assert to_record({"x": np.zeros(2)})["x"].numpy().shape == (2,)


def test_a_centre_that_stops_answering_mid_training_is_left_out_and_training_goes_on(mri_centres):
    class Hanging:  # trains round 1, then stops replying (outside the torch lock, as a dead centre would)
        def __init__(self, centre):
            self.centre = centre

        def check(self, min_events):
            self.centre.check(min_events)

        def train_round(self, state, *configs, **options):
            if configs[-1].seed > preset("tiny")[2].seed:  # round 2 and later: silent past the timeout, then gone
                time.sleep(12)
                raise ConnectionError("centre C went away")
            return self.centre.train_round(state, *configs, **options)

        def scores(self, *args):
            return self.centre.scores(*args)

    centres = {"A": mri_centres["A"], "B": mri_centres["B"], "C": Hanging(mri_centres["C"])}
    result = simulate(centres, {"min-centres": 2, "rounds": 2, "round-timeout": 6})
    assert result.dropped_out == 1 and result.centres == 2
    assert [r["replies"] for r in result.rounds] == [3, 2, 2]  # round 1, round 2, the score sums
    assert result.n_cases == len(mri_centres["A"].X) + len(mri_centres["B"].X)
