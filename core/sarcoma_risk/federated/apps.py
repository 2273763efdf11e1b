"""The Flower app objects that a deployed SuperLink / SuperNode load (``module:attribute``).

``flwr run`` names them in the Flower App's ``pyproject.toml`` (written by ``sarcoma-risk federated
server``): ``sarcoma_risk.federated.apps:server_app`` and ``sarcoma_risk.federated.apps:client_app``.
The run config's ``model`` chooses the work: ``fusion`` (the Cox fusion from sums, the default) or
``radiology`` (FedAvg / FedProx of the CNN); a centre's ClientApp answers both kinds of message.
Only Flower imports this module.
"""

from sarcoma_risk.federated.fedavg import add_imaging_handlers, make_fedavg_server_app
from sarcoma_risk.federated.flower import make_client_app, make_server_app

from flwr.serverapp import ServerApp  # noqa: I001 - after federated.flower, which imports Flower with its filter

_fusion_app = make_server_app()
_cnn_app = make_fedavg_server_app()

server_app = ServerApp()


@server_app.main()
def _main(grid, context) -> None:
    (_fusion_app if str(context.run_config.get("model", "fusion")) == "fusion" else _cnn_app)(grid, context)


client_app = make_client_app()
add_imaging_handlers(client_app)
