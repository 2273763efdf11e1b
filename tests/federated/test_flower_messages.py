"""The Flower apps: every message holds only named aggregates of model-sized shapes; dropouts are survived."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sarcoma_risk import __version__
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.federated import centre
from sarcoma_risk.federated.flower import (PROTOCOL, FederatedError, LocalGrid, decode, encode, make_client_app,
                                           make_server_app, run_server, server_context)
from sarcoma_risk.federated.fusion import fit_federated_fusion
from sarcoma_risk.fusion.model import all_subsets
from sarcoma_risk.fusion.table import submodel_name

from flwr.app import ConfigRecord, Message  # noqa: I001 - after federated.flower, which imports Flower with its filter

from .conftest import assert_sender, local_query, split


def _loader(parts):
    return lambda context: (context.node_config["centre"], parts[context.node_config["centre"]])


def _run(parts, run_config, *, loader=None, on_message=None, wrap=None):
    client = make_client_app(loader or _loader(parts))
    client = wrap(client) if wrap else client
    grid = LocalGrid(client, [{"centre": c} for c in parts], run_config)
    result = {}
    app = make_server_app(on_message=on_message, on_done=lambda model, log, rounds: result.update(
        model=model, log=log, rounds=rounds))
    try:
        app(grid, server_context(run_config))
    finally:
        grid.close()
    return result


# What may travel, by message type: scalar names (regular expressions) and array names with their shapes
# as functions of p (design columns of the sub-model), t (month grid edges) and r (risk grid edges). The
# fields of a sub-model travel as "<sub-model>/<field>" and are checked here by their field name.
SCALARS = {
    "request": r"op|features|modalities|min_level_count|subsets|submodels|state|columns",
    "summary": r"centre|n_cases|n_events|follow_up_months|level/[a-z_]+/[A-Za-z0-9_]+",
    "moments": r"centre|n",
    "cox": r"centre|log_likelihood",
    "describe": r"centre",
}
ARRAYS = {
    "request": {"mean": "p", "std": "p", "beta": "p", "means": "p", "time_edges": "t", "risk_edges": "r"},
    "summary": {"numeric/*": (3,), "score/*": (3,), "subset/*": (2,)},
    "moments": {"sum": "p", "sum_squares": "p"},
    "cox": {"gradient": "p", "hessian": "pp"},
    "describe": {"events": "t-1", "exposure": "t-1", "risk_histogram": "r-1", "risk_outside": (2,), "pairs": (2,)},
}


def _expected_shape(spec, p, t, r):
    if isinstance(spec, tuple):
        return spec
    return {"p": (p,), "pp": (p, p), "t": (t,), "r": (r,), "t-1": (t - 1,), "r-1": (r - 1,)}[spec]


def _field(key, submodels):
    """(sub-model, field) of a message key: ("clinical+radiology", "beta") or (None, key) for the others."""
    head, _, rest = key.partition("/")
    return (head, rest) if head in submodels and rest else (None, key)


def test_every_message_holds_only_named_aggregates_and_no_case_data(three_centres):
    parts = split(three_centres)
    messages = []
    result = _run(parts, {"min-centres": 3}, on_message=lambda direction, m, size: messages.append((direction, m)))
    model = result["model"]
    case_ids = set(three_centres.index)
    sizes = {len(rows) for rows in parts.values()} | {len(three_centres)}
    columns_of = {name: len(sub.cox.columns) + len(sub.dropped_columns) for name, sub in model.submodels_.items()}
    assert len(messages) == 2 * 3 * len(result["rounds"])  # every round: 3 requests and 3 replies
    grids, p_of, asked = {}, {}, set()
    for direction, message in messages:
        op = message.metadata.message_type.split(".")[1]
        kind = "request" if direction == "sent" else op
        content = message.content
        assert set(content.config_records) <= {"config", "sender"} and set(content.array_records) <= {"arrays"}
        assert_sender(content)
        assert not content.metric_records
        payload = decode(content)
        config = dict(content.config_records.get("config", {}))
        arrays = dict(content.array_records.get("arrays", {}))
        if direction == "sent" and "submodels" in payload:
            asked = set(json.loads(payload["submodels"]))
            assert asked <= set(model.submodels_), f"sent {op}: asks about {asked - set(model.submodels_)}"
            for name in asked:
                columns = payload.get(f"{name}/columns")
                p_of[name] = len(json.loads(columns)) if columns is not None else columns_of[name]
        if direction == "sent" and op == "describe":
            grids = {"t": payload["time_edges"].size, "r": payload["risk_edges"].size}
        for key, value in config.items():
            part, field = _field(key, columns_of)
            assert part is None or part in asked, f"{direction} {op}: {key!r} is about a sub-model not asked about"
            assert re.fullmatch(SCALARS[kind], field), f"{direction} {op}: unexpected field {key!r}"
            assert isinstance(value, (int, float, str)), f"{direction} {op}: {key} is a {type(value).__name__}"
            text = json.dumps(value)
            assert not any(case_id in text for case_id in case_ids), f"{direction} {op}: {key} names a case"
        for key, array in arrays.items():
            part, field = _field(key, columns_of)
            assert part is None or part in asked, f"{direction} {op}: {key!r} is about a sub-model not asked about"
            spec = ARRAYS[kind].get(field) or ARRAYS[kind].get(field.split("/")[0] + "/*")
            assert spec is not None, f"{direction} {op}: unexpected array {key!r}"
            shape = tuple(array.shape)
            assert shape == _expected_shape(spec, p_of.get(part, 0), grids.get("t", 0), grids.get("r", 0)), \
                f"{direction} {op}: {key} has shape {shape}"
            # no per-case vector: model-sized arrays only (the grids are fixed by the server, not the data)
            if spec not in ("t", "t-1", "r", "r-1"):
                assert not (set(shape) & sizes), f"{direction} {op}: {key} {shape} matches a number of cases"
        if direction == "received":
            assert payload["centre"] in parts


def test_the_sub_models_share_their_rounds(three_centres):
    # summary, moments, the Newton-Raphson rounds of the slowest sub-model (each iteration and halved step
    # is a round), describe: not one run of rounds per sub-model after another
    result = _run(split(three_centres), {"min-centres": 3})
    ops = [r["op"] for r in result["rounds"]]
    newton = result["log"].newton
    assert len(newton) == len(result["model"].submodels_) >= 4
    assert ops[:2] == ["summary", "moments"] and ops[-1] == "describe" and set(ops[2:-1]) == {"cox"}
    assert len(ops) - 3 >= 1 + max(n["iterations"] for n in newton.values())
    assert len(ops) < 3 + sum(1 + n["iterations"] for n in newton.values())


def test_the_round_bytes_are_counted_and_the_weights_are_written(three_centres, tmp_path):
    result = _run(split(three_centres), {"min-centres": 3, "out": str(tmp_path)})
    rounds = result["rounds"]
    assert all(r["bytes_sent"] > 0 and r["bytes_received"] > 0 and r["replies"] == 3 for r in rounds)
    entry = json.loads((tmp_path / "manifest.json").read_text())["models"]["fusion"]
    federated = entry["training_data"]["federated"]
    assert federated["centres"] == ["A", "B", "C"] and federated["rounds"] == len(rounds)
    assert federated["engine"].startswith("flwr ")
    assert "stratified by centre" in federated["strategy"]


def test_a_centre_that_stops_answering_mid_fit_is_left_out_and_the_fit_goes_on(three_centres):
    parts = split(three_centres)
    calls = {"C": 0}

    def loader(context):
        name = context.node_config["centre"]
        if name != "C":
            return name, parts[name]

        class Hanging:  # answers the summary and the first rounds, then stops replying
            def __init__(self, rows):
                self.rows = rows

            def __getattr__(self, attr):
                return getattr(self.rows, attr)

            def __getitem__(self, key):
                calls["C"] += 1
                if calls["C"] > 40:
                    time.sleep(3)
                return self.rows[key]

            def __len__(self):
                return len(self.rows)

        return name, Hanging(parts[name])

    result = _run(parts, {"min-centres": 2, "round-timeout": 1.0}, loader=loader)
    assert result["log"].dropped_out == ["C"]
    assert result["log"].centres == ["A", "B"]
    alone, _ = fit_federated_fusion(local_query({"A": parts["A"], "B": parts["B"]}))
    for name, sub in alone.submodels_.items():
        np.testing.assert_allclose(result["model"].submodels_[name].cox.beta, sub.cox.beta, atol=1e-9)


def test_a_centre_whose_data_fails_stops_the_fit_with_an_error_naming_it_but_no_case(three_centres, caplog):
    parts = split(three_centres)
    broken = parts["B"].copy()
    broken["margin"] = "R7"

    with pytest.raises(FederatedError, match=r"centre B: InvalidClinicalData while answering query.summary "
                                             r"\(details in that centre's log\)") as err:
        _run({**parts, "B": broken}, {"min-centres": 2})
    assert "SYN-B" not in str(err.value)  # the error reply names no case
    assert "column 'margin': 'R7'" in caplog.text  # the centre's own log has the details


def test_a_centre_on_a_release_from_before_the_message_formats_stops_the_fit_with_a_message_naming_it(
        three_centres):
    def older_release(client):  # its replies carry no sender record
        def handle(message, context):
            reply = client(message, context)
            if context.node_config["centre"] == "B":
                del reply.content["sender"]
            return reply
        return handle

    here = rf"sarcoma-risk {re.escape(__version__)} \(message format {PROTOCOL}\)"
    with pytest.raises(FederatedError, match=rf"^centre B sent a message without a message format: it runs a "
                                             rf"SarcomaRisk release older than the federated message formats; this "
                                             rf"side runs {here}; the server and every centre must run the same "
                                             rf"SarcomaRisk release$"):
        _run(split(three_centres), {"min-centres": 3}, wrap=older_release)


@pytest.mark.parametrize("sender, why", [
    ({"protocol": PROTOCOL + 1, "release": "9.0.0"}, rf"the server runs sarcoma-risk 9\.0\.0 \(message format "
                                                     rf"{PROTOCOL + 1}\)"),
    (None, "the server sent a message without a message format"),
], ids=["newer-server", "older-server"])
def test_a_centre_refuses_a_server_of_another_message_format_and_says_why_in_its_error_reply(three_centres, sender,
                                                                                            why):
    request = encode({"op": "summary"})
    if sender:
        request["sender"] = ConfigRecord(sender)
    grid = LocalGrid(make_client_app(_loader(split(three_centres))), [{"centre": "A"}], {})
    try:
        [reply] = grid.send_and_receive([Message(request, 1, "query.summary", group_id="0")], timeout=30)
    finally:
        grid.close()
    assert reply.has_error() and not reply.has_content()
    assert re.search(rf"{why}.*; this side runs sarcoma-risk {re.escape(__version__)} \(message format "
                     rf"{PROTOCOL}\); the server and every centre must run the same SarcomaRisk release",
                     reply.error.reason), reply.error.reason


def test_the_fit_stops_at_its_time_limit():
    class SlowGrid:
        def get_node_ids(self):
            return [1, 2]

    with pytest.raises(FederatedError, match="over its time limit"):
        run_server(SlowGrid(), {"min-centres": 2, "time-limit": -1})


def test_every_sub_model_is_fitted_with_a_bounded_number_of_rounds(three_centres):
    result = _run(split(three_centres), {"min-centres": 3, "max-rounds": 2})
    assert {v["iterations"] for v in result["log"].newton.values()} <= {1, 2}
    assert len(result["log"].newton) == len(all_subsets())
    assert {submodel_name(s) for s in all_subsets()} == set(result["model"].submodels_)


@pytest.mark.parametrize("submodels", [None, "clinical", "[]", '["clinical", 3]'])
def test_a_sub_model_question_that_names_no_sub_model_list_is_refused(three_centres, submodels):
    request = {"op": "moments", **({} if submodels is None else {"submodels": submodels})}
    with pytest.raises(InvalidInput, match=r"federated request 'moments': field 'submodels' must be a JSON list"):
        centre.answer(three_centres, request)


def test_the_deployed_apps_leave_torch_and_lifelines_unimported_until_a_message_needs_them():
    # a deployed SuperNode starts a process per message: the Cox fusion's rounds must not pay for torch, nor a
    # centre, which only sums statistics, for lifelines' fitters
    code = "import sys, sarcoma_risk.federated.apps; print(sorted({'torch', 'lifelines'} & set(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "core")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
