"""Federated multi-centre training: centres that cannot share cases still fit one model.

The Cox fusion: :mod:`~sarcoma_risk.federated.coxstats` (a centre's Cox partial likelihood as sums,
Newton-Raphson on their totals), :mod:`~sarcoma_risk.federated.centre` (what a centre computes),
:mod:`~sarcoma_risk.federated.fusion` (the server's Cox fusion fit). The CNNs:
:mod:`~sarcoma_risk.federated.imaging` (a radiology centre's round),
:mod:`~sarcoma_risk.federated.patchmodel` (a pathology centre's round and tile counts),
:mod:`~sarcoma_risk.federated.signature` (the slide signature from sums),
:mod:`~sarcoma_risk.federated.privacy` (clipping and noise on an update).
:mod:`~sarcoma_risk.federated.histogram` (scores and risks as counts on the server's grid) serves both.
:mod:`~sarcoma_risk.federated.flower` and :mod:`~sarcoma_risk.federated.fedavg` carry the messages
(Flower's ServerApp, ClientApp and FedAvg/FedProx), :mod:`~sarcoma_risk.federated.apps` holds the deployed
apps; Flower (``flwr``, the ``federated`` extra) is
imported only by those three.
"""
