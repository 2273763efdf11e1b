"""The Flower app objects that a deployed SuperLink / SuperNode load (``module:attribute``).

``flwr run`` names them in the Flower App's ``pyproject.toml`` (written by ``sarcoma-risk federated
server``): ``sarcoma_risk.federated.apps:server_app`` and ``sarcoma_risk.federated.apps:client_app``.
Only Flower imports this module.
"""

from sarcoma_risk.federated.flower import make_client_app, make_server_app

server_app = make_server_app()
client_app = make_client_app()
