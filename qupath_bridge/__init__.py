"""QuPath side of SarcomaRisk: scoring QuPath images, a paquo adapter for QuPath projects, `sarcoma-qupath`.

QuPath's GeoJSON rules live in the core (:mod:`sarcoma_risk.pathology.geojson`), which the slide
pipeline and the phantom use too; the bridge imports them from there, never the reverse. Only
:mod:`qupath_bridge.project` imports paquo (which starts a Java VM); everything else works without
QuPath installed.
"""
