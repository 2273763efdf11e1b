"""``sarcoma-risk serve``: the case-record server for a department (HTTP JSON API and coordinator pages)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from pathlib import Path

from sarcoma_risk.cli.common import add_store_option, positive_int

log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "serve", help="serve the case records over HTTP(S) to 3D Slicer, QuPath and coordinators",
        description="Serve a PostgreSQL (postgresql://...) or SQLite case store over HTTP: the JSON API that "
                    "--store https://HOST:PORT uses, and the coordinators' web pages at /cases. Clients "
                    "authenticate with API tokens ('sarcoma-risk users add'). Give --ssl-keyfile and "
                    "--ssl-certfile for HTTPS, or run it on 127.0.0.1 behind a reverse proxy that terminates TLS "
                    "(then add --proxy-headers). Runs in one process; stop it with Ctrl+C.")
    add_store_option(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface, with TLS)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--ssl-keyfile", type=Path, default=None, metavar="KEY.pem", help="TLS private key (PEM)")
    p.add_argument("--ssl-certfile", type=Path, default=None, metavar="CERT.pem", help="TLS certificate chain (PEM)")
    p.add_argument("--proxy-headers", action="store_true",
                   help="behind a reverse proxy: take the client's address and scheme from X-Forwarded-For/-Proto "
                        "(sent by the proxies listed in --forwarded-allow-ips)")
    p.add_argument("--forwarded-allow-ips", default="127.0.0.1", metavar="IPS",
                   help="comma-separated addresses of trusted proxies (default 127.0.0.1)")
    p.add_argument("--root-path", default="", metavar="/PREFIX",
                   help="the path prefix the reverse proxy serves the application under, e.g. /sarcoma-risk")
    p.add_argument("--pool-size", type=positive_int, default=8, metavar="N", help="database connections (default 8)")
    p.add_argument("--max-body-mb", type=float, default=4.0, metavar="MB",
                   help="largest request body accepted (default 4 MB)")
    p.add_argument("--transaction-idle-s", type=float, default=30.0, metavar="S",
                   help="roll back a client's open transaction after this many idle seconds (default 30)")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="weights folder whose validation cohort the web page plots (default: the shipped weights)")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from sarcoma_risk.errors import InvalidInput
    from sarcoma_risk.server.app import create_app
    from sarcoma_risk.server.service import ServerConfig
    from sarcoma_risk.settings import default_store

    if (args.ssl_keyfile is None) != (args.ssl_certfile is None):
        raise InvalidInput("--ssl-keyfile and --ssl-certfile go together (the key and its certificate)")
    for option, path in (("--ssl-keyfile", args.ssl_keyfile), ("--ssl-certfile", args.ssl_certfile)):
        if path is not None and not path.is_file():
            raise InvalidInput(f"{option} {path}: no such file")
    if args.max_body_mb <= 0 or args.transaction_idle_s <= 0:
        raise InvalidInput("--max-body-mb and --transaction-idle-s must be positive")
    config = ServerConfig(store=str(args.store if args.store is not None else default_store()),
                          pool_size=args.pool_size, max_body_bytes=int(args.max_body_mb * 1024 * 1024),
                          transaction_idle_s=args.transaction_idle_s, weights=args.weights)
    app = create_app(config)  # creates or migrates the store, or stops here with the reason
    scheme = "https" if args.ssl_certfile else "http"
    print(f"serving {config.location().display} at {scheme}://{args.host}:{args.port}{args.root_path} "
          f"(web pages at /cases, API at /api/v1, OpenAPI at /openapi.json); Ctrl+C stops", file=sys.stderr)
    if scheme == "http" and not _loopback(args.host):
        print("warning: plain HTTP on a network interface sends API tokens and records unencrypted; give "
              "--ssl-keyfile/--ssl-certfile or listen on 127.0.0.1 behind a TLS reverse proxy", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, ssl_keyfile=_text(args.ssl_keyfile),
                ssl_certfile=_text(args.ssl_certfile), proxy_headers=args.proxy_headers,
                forwarded_allow_ips=args.forwarded_allow_ips, root_path=args.root_path,
                log_level="debug" if args.verbose else "info", timeout_keep_alive=10)
    return 0


def _text(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
