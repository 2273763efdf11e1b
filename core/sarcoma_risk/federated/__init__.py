"""Federated multi-centre training: centres that cannot share cases still fit one model.

:mod:`~sarcoma_risk.federated.coxstats` (a centre's Cox partial likelihood as sums, Newton-Raphson
on their totals), :mod:`~sarcoma_risk.federated.centre` (what a centre computes),
:mod:`~sarcoma_risk.federated.fusion` (the server's Cox fusion fit),
:mod:`~sarcoma_risk.federated.flower` (the Flower ServerApp and ClientApp that carry the messages).
Flower (``flwr``, the ``federated`` extra) is imported only by the last.
"""
