"""The Flower app objects that a deployed SuperLink / SuperNode load (``module:attribute``).

``flwr run`` names them in the Flower App's ``pyproject.toml`` (written by ``sarcoma-risk federated
server``): ``sarcoma_risk.federated.apps:server_app`` and ``sarcoma_risk.federated.apps:client_app``.
The run config's ``model`` chooses the work: ``fusion`` (the Cox fusion from sums, the default) or
``radiology`` / ``pathology`` (FedAvg / FedProx of a CNN); a centre's ClientApp answers both kinds of
message. Only Flower imports this module.

A deployed SuperNode starts a new process for every message, so this module imports the CNN code
(and torch, seconds of every round) only when a CNN message arrives: the Cox fusion's many small
rounds do not pay for it.
"""

from __future__ import annotations

from typing import Any, Callable

from sarcoma_risk.federated.flower import IMAGING_MESSAGES, make_client_app, make_server_app, register

from flwr.serverapp import ServerApp  # noqa: I001 - after federated.flower, which imports Flower with its filter

_fusion_app = make_server_app()
_handlers: dict[str, Callable[[Any, Any], Any]] = {}

server_app = ServerApp()


@server_app.main()
def _main(grid, context) -> None:
    if str(context.run_config.get("model", "fusion")) == "fusion":
        _fusion_app(grid, context)
    else:
        from sarcoma_risk.federated.fedavg import make_fedavg_server_app  # lazy: torch, for CNN runs only

        make_fedavg_server_app()(grid, context)


def _imaging(kind: str) -> Callable[[Any, Any], Any]:
    def handle(message, context):
        if not _handlers:
            from sarcoma_risk.federated.fedavg import imaging_handlers  # lazy: torch, for CNN messages only

            _handlers.update(imaging_handlers())
        return _handlers[kind](message, context)
    return handle


client_app = make_client_app()
for _kind in IMAGING_MESSAGES:
    register(client_app, _kind, _imaging(_kind))
