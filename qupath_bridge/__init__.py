"""QuPath side of SarcomaRisk: QuPath GeoJSON (pure Python) and a paquo adapter for QuPath projects.

Only :mod:`qupath_bridge.project` imports paquo (which starts a Java VM); everything else works
without QuPath installed.
"""
