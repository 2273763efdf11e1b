"""The Flower apps of the federated Cox fusion: a ServerApp, a ClientApp and an in-process Grid.

The server's questions (:mod:`sarcoma_risk.federated.fusion`) and the centres' answers
(:mod:`sarcoma_risk.federated.centre`) travel as Flower ``Message`` objects of type
``query.<op>`` (``query.summary``, ``query.moments``, ``query.cox``, ``query.describe``): numbers
and text in a ``ConfigRecord`` named ``config``, arrays in an ``ArrayRecord`` named ``arrays``.
The same two apps run

* deployed, one Flower SuperNode per centre and a SuperLink, over gRPC (``sarcoma-risk federated
  server`` / ``client``, see README "Federated training");
* in one process (``sarcoma-risk federated simulate``, tests): :class:`LocalGrid` implements
  Flower's ``Grid`` by serialising every message to Flower's protobuf wire format and back, and
  handing it to each centre's ClientApp in a thread; a centre that does not reply within the round
  timeout is treated as gone.

``on_message(direction, message, size)`` sees every message the server sends (``"sent"``) and
receives (``"received"``) with its size in bytes on the wire: the tests inspect them all.

Every message, both ways, also carries a ``ConfigRecord`` named ``sender``: the message format
(:data:`PROTOCOL`) and the SarcomaRisk release of its sender. The server and the centres refuse a
message of another format, so a centre on another release stops the run with a message naming both
releases instead of failing deep inside the fit.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from uuid import uuid4

import numpy as np

with warnings.catch_warnings():
    # typer (which Flower imports for its own command line) still calls click helpers that click 8.2+
    # deprecates; nothing here uses them, so exactly those warnings are silenced, once, at import.
    warnings.filterwarnings("ignore", message=r"'click\.utils\.get_\w+_stream' is deprecated",
                            category=DeprecationWarning)
    from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.common.serde import message_from_proto, message_to_proto
    from flwr.proto.message_pb2 import Message as ProtoMessage  # pylint: disable=no-name-in-module
    from flwr.serverapp import ServerApp

from sarcoma_risk import __version__
from sarcoma_risk.cohort import Split, read_manifest
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.federated import centre
from sarcoma_risk.federated.fusion import FederatedFusionSettings, fit_federated_fusion
from sarcoma_risk.federated.output import write_federated_fusion
from sarcoma_risk.fusion.table import table_from_manifest
from sarcoma_risk.survival.scores import read_score_tables

log = logging.getLogger(__name__)

MessageHook = Callable[[str, Any, int], None]
TableLoader = Callable[[Any], tuple[str, Any]]


class FederatedError(InvalidInput):
    """A centre answered with an error, or too few centres are there."""


# ---- payloads <-> Flower records ------------------------------------------------------------------

def encode(payload: Mapping[str, Any]):
    """A flat mapping of numbers, text and numpy arrays as a Flower RecordDict."""
    arrays, config = {}, {}
    for key, value in payload.items():
        if isinstance(value, np.ndarray):
            arrays[key] = Array(np.ascontiguousarray(value, dtype=np.float64))
        elif isinstance(value, (bool, int, float, str)) or isinstance(value, np.generic):
            config[key] = value.item() if isinstance(value, np.generic) else value
        else:
            raise TypeError(f"federated payload: {key!r} is a {type(value).__name__}; expected a number, text or array")
    return RecordDict({"config": ConfigRecord(config), "arrays": ArrayRecord(arrays)})


# Flower's Array.numpy() reads the .npy header with ast.literal_eval, and CPython 3.11 keeps the AST
# constructor's recursion depth in interpreter-wide state: two threads decoding at once can fail with
# "SystemError: AST constructor recursion depth mismatch". LocalGrid runs the centres in threads, and the
# server aggregates while a centre that timed out may still decode (see fedavg.AggregationUnderDecodeLock).
DECODE_LOCK = threading.RLock()


def to_numpy(array) -> np.ndarray:
    """A Flower ``Array`` as a numpy array, one thread at a time."""
    with DECODE_LOCK:
        return array.numpy()


def decode(content) -> dict[str, Any]:
    """Inverse of :func:`encode`."""
    out: dict[str, Any] = dict(content.config_records["config"]) if "config" in content.config_records else {}
    if "arrays" in content.array_records:
        out.update({k: to_numpy(a) for k, a in content.array_records["arrays"].items()})
    return out


# The format of the federated messages. Raise it whenever a message gains, loses or changes a field.
# 2: the centres count the scores and risks beyond the server's histogram grid (releases before send no format).
# 3: moments, cox and describe ask about every sub-model at once (fields named <sub-model>/<field>).
PROTOCOL = 3


def stamp(content):
    """``content`` (a RecordDict) with the ``sender`` record: this side's message format and release."""
    content["sender"] = ConfigRecord({"protocol": PROTOCOL, "release": __version__})
    return content


def check_sender(content, sender: str) -> None:
    """Refuse a message from ``sender`` (e.g. "centre B", "the server") that is of another message format.

    Raises
    ------
    FederatedError
        The message names no format (a release from before formats were named) or another one.
    """
    same = "the server and every centre must run the same SarcomaRisk release"
    here = f"this side runs sarcoma-risk {__version__} (message format {PROTOCOL})"
    record = content.config_records.get("sender")
    if record is None or "protocol" not in record:
        raise FederatedError(f"{sender} sent a message without a message format: it runs a SarcomaRisk release "
                             f"older than the federated message formats; {here}; {same}")
    theirs = record["protocol"]
    if theirs != PROTOCOL:
        raise FederatedError(f"{sender} runs sarcoma-risk {record.get('release', '(unnamed)')} (message format "
                             f"{theirs}); {here}; {same}")


def wire_size(message) -> int:
    """Bytes of a message in Flower's protobuf wire format."""
    return len(message_to_proto(message).SerializeToString())


# ---- the ClientApp (one per centre) ---------------------------------------------------------------

def manifest_table_loader(context) -> tuple[str, Any]:
    """The centre's development fusion table from its node config: ``manifest``, ``centre``, ``scores``.

    ``scores`` is a comma-separated list of score tables (optional). Only the rows of the centre
    named ``centre`` are read, so a phantom manifest of several centres can stand for each of them.
    """
    config = context.node_config
    for key in ("manifest", "centre"):
        if not str(config.get(key, "")).strip():
            raise InvalidInput(f"federated client: node config {key!r} is missing (e.g. --node-config "
                               "'manifest=\"PATH\" centre=\"A\"')")
    manifest = read_manifest(Path(str(config["manifest"])))
    scores = [Path(s) for s in str(config.get("scores", "")).split(",") if s.strip()]
    table = table_from_manifest(manifest, read_score_tables(scores), split=Split.DEVELOPMENT)
    name = str(config["centre"])
    mine = table[table["centre"] == name]
    if mine.empty:
        raise InvalidInput(f"federated client: the manifest {config['manifest']} has no development case of centre "
                           f"{name!r}; centres there: {', '.join(sorted(table['centre'].unique()))}")
    return name, mine


#: The kinds of message the federated CNNs send to the centres (:mod:`sarcoma_risk.federated.fedavg`).
IMAGING_MESSAGES = ("train", "evaluate", "query.scores", "query.signature")


def register(app, kind: str, handle: Callable[[Any, Any], Any]) -> None:
    """Register ``handle`` on a ClientApp for messages of ``kind`` ("train", "evaluate" or "query.<op>")."""
    if kind.startswith("query."):
        app.query(kind.removeprefix("query."))(handle)
    else:
        getattr(app, kind)()(handle)


def make_client_app(load_table: TableLoader = manifest_table_loader):
    """A ClientApp answering the server's ``query.<op>`` messages from its own table."""
    app = ClientApp()
    cache: dict[int, tuple[str, Any]] = {}

    def handle(message: Message, context) -> Message:
        name = str(context.node_config.get("centre", context.node_id))
        check_sender(message.content, "the server")
        try:
            if context.node_id not in cache:
                cache[context.node_id] = load_table(context)
            name, table = cache[context.node_id]
            reply = centre.answer(table, decode(message.content))
        except Exception as exc:
            # The details name cases and values: they stay in this centre's log, the server gets the kind only.
            log.error("centre %s: %s", name, exc)
            raise FederatedError(f"centre {name}: {type(exc).__name__} while answering "
                                 f"{message.metadata.message_type} (details in that centre's log)") from None
        reply["centre"] = name
        return Message(stamp(encode(reply)), reply_to=message)

    for op in centre.OPERATIONS:
        app.query(op)(handle)
    return app


# ---- the server side ------------------------------------------------------------------------------

#: Seconds between pulls for replies: the first, and the most (the wait grows by half each time).
FIRST_POLL_S, LONGEST_POLL_S = 0.05, 0.25


def exchange(grid, messages: Iterable[Message], *, timeout: float | None) -> list[Message]:
    """Flower's ``Grid.send_and_receive``, pulling for replies sooner than its fixed 3 s.

    A Cox round's replies come back within seconds (a SuperNode starts a process per message), so
    Flower's 3 s wait between pulls would cost each round 1.5 s on average; the wait here starts at
    50 ms and grows to 0.25 s (four small requests a second to the SuperLink while a CNN round
    trains). ``timeout`` None waits for every reply, as Flower's does.
    """
    pending = set(grid.push_messages(list(messages)))
    deadline = None if timeout is None else time.monotonic() + timeout
    replies: list[Message] = []
    wait_s = FIRST_POLL_S
    while pending:
        arrived = list(grid.pull_messages(pending))
        replies.extend(arrived)
        pending -= {m.metadata.reply_to_message_id for m in arrived}
        if not pending or (deadline is not None and time.monotonic() >= deadline):
            break
        time.sleep(wait_s if deadline is None else max(0.0, min(wait_s, deadline - time.monotonic())))
        wait_s = min(wait_s * 1.5, LONGEST_POLL_S)
    return replies


class GridQuery:
    """``query(op, request) -> {centre: reply}`` over a Flower Grid, one round per call.

    Nodes that do not answer within ``round_timeout`` seconds are left out of later rounds. A node
    that answers with an error stops the fit with that error, naming the centre.
    """

    def __init__(self, grid, *, round_timeout: float, on_message: MessageHook | None = None) -> None:
        self.grid, self.round_timeout, self.on_message = grid, round_timeout, on_message
        self.nodes = list(grid.get_node_ids())
        self.names: dict[int, str] = {}
        self.rounds: list[dict[str, Any]] = []

    def __call__(self, op: str, request: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        content = stamp(encode(request))
        messages = [Message(content, dst_node_id=node, message_type=f"query.{op}", group_id=str(len(self.rounds)))
                    for node in self.nodes]
        sent = 0
        for m in messages:
            size = wire_size(m)
            sent += size
            if self.on_message:
                self.on_message("sent", m, size)
        replies = exchange(self.grid, messages, timeout=self.round_timeout)
        received, out, answered = 0, {}, set()
        for reply in replies:
            size = wire_size(reply)
            received += size
            if self.on_message:
                self.on_message("received", reply, size)
            node = reply.metadata.src_node_id
            if reply.has_error():
                raise FederatedError(f"a centre answered with an error (node {self.names.get(node, node)}): "
                                     f"{reply.error.reason}")
            payload = decode(reply.content)
            self.names[node] = str(payload.pop("centre", node))
            check_sender(reply.content, f"centre {self.names[node]}")
            out[self.names[node]] = payload
            answered.add(node)
        gone = [n for n in self.nodes if n not in answered]
        if gone:
            log.warning("round %d (%s): no reply from %s within %gs; continuing without", len(self.rounds), op,
                        ", ".join(str(self.names.get(n, n)) for n in gone), self.round_timeout)
            self.nodes = [n for n in self.nodes if n in answered]
        self.rounds.append({"op": op, "nodes": len(messages), "replies": len(replies), "bytes_sent": sent,
                            "bytes_received": received})
        return out


def run_server(grid, run_config: Mapping[str, Any], on_message: MessageHook | None = None):
    """The ServerApp's work: wait for the centres, fit, return ``(model, fit log, GridQuery)``."""
    settings = settings_from_config(run_config)
    min_nodes = settings.min_centres
    deadline = time.monotonic() + float(run_config.get("wait-timeout", 60.0))
    while len(list(grid.get_node_ids())) < min_nodes:
        if time.monotonic() > deadline:
            raise FederatedError(f"federated server: {len(list(grid.get_node_ids()))} centre(s) connected; "
                                 f"need {min_nodes} (--min-centres) within {run_config.get('wait-timeout', 60.0)}s")
        time.sleep(0.5)
    query = GridQuery(grid, round_timeout=float(run_config.get("round-timeout", 120.0)), on_message=on_message)
    deadline = time.monotonic() + float(run_config.get("time-limit", 3600.0))

    def bounded(op: str, request: Mapping[str, Any]):
        if time.monotonic() > deadline:
            raise FederatedError(f"federated fit: over its time limit of {run_config.get('time-limit')}s "
                                 f"after {len(query.rounds)} rounds")
        replies = query(op, request)
        if len(replies) < min_nodes:
            raise FederatedError(f"federated fit: {len(replies)} centre(s) answered round {len(query.rounds)} ({op}); "
                                 f"need {min_nodes} (--min-centres)")
        return replies

    model, fit_log = fit_federated_fusion(bounded, settings)
    return model, fit_log, query


def settings_from_config(run_config: Mapping[str, Any]) -> FederatedFusionSettings:
    """Settings from a Flower run config (text values as ``flwr run --run-config`` gives them)."""
    defaults = FederatedFusionSettings()
    features = run_config.get("features")
    return FederatedFusionSettings(
        clinical_features=tuple(json.loads(features)) if features else defaults.clinical_features,
        penalizer=float(run_config.get("penalizer", defaults.penalizer)),
        min_events=int(run_config.get("min-events", defaults.min_events)),
        min_centre_events=int(run_config.get("min-centre-events", defaults.min_centre_events)),
        max_newton_steps=int(run_config.get("max-rounds", defaults.max_newton_steps)),
        min_centres=int(run_config.get("min-centres", defaults.min_centres)),
    )


def make_server_app(on_message: MessageHook | None = None, on_done: Callable[..., None] | None = None):
    """A ServerApp that fits the federated Cox fusion and writes it where the run config says (``out``)."""
    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        model, fit_log, query = run_server(grid, context.run_config, on_message)
        if context.run_config.get("out"):
            write_federated_fusion(Path(str(context.run_config["out"])), model, fit_log, query.rounds,
                                   context.run_config)
        if on_done is not None:
            on_done(model, fit_log, query.rounds)

    return app


def server_context(run_config: Mapping[str, Any]) -> Context:
    """The Context a ServerApp receives, for running one in this process (with :class:`LocalGrid`)."""
    return Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=dict(run_config))


# ---- an in-process Grid ---------------------------------------------------------------------------

class LocalGrid:
    """Flower's ``Grid`` in one process: each node is a ClientApp with its own Context.

    Every message goes through Flower's protobuf serialisation both ways, so a ClientApp receives
    exactly what a gRPC transport would deliver. Nodes run in threads; a node that does not reply
    within the timeout of :func:`exchange` (or ``send_and_receive``) gets no say in that round.
    """

    def __init__(self, client_app, node_configs: Iterable[Mapping[str, Any]], run_config: Mapping[str, Any]) -> None:
        self.client_app = client_app
        self.contexts = {i + 1: Context(run_id=1, node_id=i + 1, node_config=dict(cfg), state=RecordDict(),
                                        run_config=dict(run_config))
                         for i, cfg in enumerate(node_configs)}
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.contexts)))
        self._in_flight: dict[str, tuple[Message, Future]] = {}  # message id -> (message, its delivery)

    # Grid's interface
    def set_run(self, run) -> None:
        self._run = run

    @property
    def run(self):
        return getattr(self, "_run", None)

    def create_message(self, content, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None):
        return Message(content, dst_node_id, message_type, group_id=group_id, ttl=ttl)

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def push_messages(self, messages) -> list[str]:
        """Start delivering ``messages``; returns their ids (a fresh uuid each, as Flower's in-memory grid)."""
        ids = []
        for m in messages:
            m.metadata.__dict__["_message_id"] = str(uuid4())
            self._in_flight[m.metadata.message_id] = (m, self._pool.submit(self._deliver, m))
            ids.append(m.metadata.message_id)
        return ids

    def pull_messages(self, message_ids) -> list[Message]:
        """The replies that have arrived to ``message_ids`` (each once); a failing ClientApp's is an error reply."""
        replies = []
        for message_id in list(message_ids):
            message, future = self._in_flight.get(message_id, (None, None))
            if future is None or not future.done():
                continue
            del self._in_flight[message_id]
            try:
                replies.append(future.result())
            except Exception as exc:  # noqa: BLE001 - a failing ClientApp becomes an error reply, as Flower does
                replies.append(Message(Error(code=0, reason=f"{type(exc).__name__}: {exc}"), reply_to=message))
        return replies

    def _deliver(self, message):
        wire = message_to_proto(message).SerializeToString()
        received = message_from_proto(ProtoMessage.FromString(wire))
        reply = self.client_app(received, self.contexts[message.metadata.dst_node_id])
        return message_from_proto(ProtoMessage.FromString(message_to_proto(reply).SerializeToString()))

    def send_and_receive(self, messages, *, timeout: float | None = None):
        ids = self.push_messages(messages)
        wait([self._in_flight[i][1] for i in ids], timeout=timeout)
        return self.pull_messages(ids)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
