"""``sarcoma-risk demo`` (``make demo``): one phantom case through the whole product, as its users would.

One module per job: :mod:`~sarcoma_risk.demo.case` renders a phantom case of a new seed and its
clinical table; :mod:`~sarcoma_risk.demo.radiology` scores its MRI through the 3D Slicer module's
logic (SarcomaRiskLib on an MRML scene, which runs ``score-mri`` in a separate process);
:mod:`~sarcoma_risk.demo.pathology` scores its slide through the QuPath bridge's scoring path;
:mod:`~sarcoma_risk.demo.figures` draws the MRI with its Grad-CAM, the slide heatmap, the nomogram
and the validation cohort's Kaplan-Meier curves; :mod:`~sarcoma_risk.demo.summary` says what
happened in words; :mod:`~sarcoma_risk.demo.report` writes the HTML page;
:mod:`~sarcoma_risk.demo.run` runs the steps in order with progress lines.

The demo is the composition root of the product, so it is the one part of the core that imports
the adapters: :mod:`~sarcoma_risk.demo.pathology` the QuPath bridge, :mod:`~sarcoma_risk.demo.radiology`
the 3D Slicer module's SarcomaRiskLib (from the source tree). Both imports are inside the functions
that run the demo, which needs a source checkout with the dev extras (``make demo``); nothing else in
the core imports an adapter (tests/test_architecture.py holds the list).
"""
