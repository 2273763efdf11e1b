"""The case-record server: one case record for a whole department, over HTTP.

``sarcoma-risk serve`` runs :func:`sarcoma_risk.server.app.create_app` on uvicorn over a PostgreSQL
database (or a SQLite file). 3D Slicer, the QuPath bridge and the command line reach it through
the HTTP store backend (:mod:`sarcoma_risk.records.remote`) with a per-user API token; coordinators
also use its web pages. Needs the ``server`` extra (FastAPI, uvicorn, psycopg, Jinja2).
"""
