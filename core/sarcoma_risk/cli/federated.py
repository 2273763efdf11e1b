"""``sarcoma-risk federated server|client|simulate``: the Cox fusion or the radiology CNN trained across centres with Flower."""

from __future__ import annotations

import argparse
from pathlib import Path

from sarcoma_risk.cli.common import add_json_option, positive_int, print_json


def _settings_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--penalizer", type=float, default=0.1,
                   help="ridge penalizer of every sub-model, fixed (not cross-validated) in a federated fit "
                        "(default: 0.1)")
    p.add_argument("--min-centre-events", type=positive_int, default=10,
                   help="refuse a centre with fewer development events than this (default: 10)")
    p.add_argument("--min-events", type=positive_int, default=10,
                   help="fit a sub-model only with at least this many events over all centres (default: 10)")
    p.add_argument("--min-centres", type=positive_int, default=2,
                   help="centres that must take part, after refusals and dropouts (default: 2)")
    p.add_argument("--max-rounds", type=positive_int, default=50,
                   help="Newton-Raphson iterations (rounds of messages) per sub-model at most (default: 50)")
    p.add_argument("--round-timeout", type=float, default=120.0,
                   help="seconds to wait for the centres' replies in a round; a centre that does not reply is left "
                        "out and the fit starts again without it (default: 120)")
    p.add_argument("--time-limit", type=float, default=3600.0, help="seconds for the whole fit (default: 3600)")


def _cnn_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=("fusion", "radiology", "pathology"), default="fusion",
                   help="fusion: the Cox fusion from per-centre sums (default); radiology: the CBAM 3D CNN, "
                        "pathology: the patch model (ShuffleNetV2), both with FedAvg/FedProx")
    cnn = p.add_argument_group("CNNs (--model radiology|pathology)")
    cnn.add_argument("--preset", default="standard", choices=("standard", "paper", "tiny"),
                     help="configuration: as 'train radiology --preset'; for the patch model paper is 'train "
                          "pathology --preset paper', standard its defaults, tiny seconds on tiny phantoms "
                          "(default: standard)")
    cnn.add_argument("--sequences", default="", metavar="LIST",
                     help="comma-separated inputs, t2fs or t2fs,t1ce (default: the preset's, both)")
    cnn.add_argument("--rounds", type=positive_int, default=10, help="rounds of federated averaging (default: 10)")
    cnn.add_argument("--local-epochs", type=positive_int, default=1,
                     help="epochs each centre trains on its own cases per round (default: 1)")
    cnn.add_argument("--strategy", choices=("fedavg", "fedprox"), default="fedavg",
                     help="fedavg, or fedprox (a proximal term for unequal centres) (default: fedavg)")
    cnn.add_argument("--proximal-mu", type=float, default=0.0, help="FedProx's mu (needs --strategy fedprox)")
    cnn.add_argument("--seed", type=int, default=-1, help="random seed (default: the preset's)")
    cnn.add_argument("--select-round", action="store_true",
                     help="patch model: each centre keeps one inner validation share for every round, an evaluate "
                          "round after each round returns its pair and loss sums, and the round whose average "
                          "scores best is kept (as train pathology keeps its best epoch); default: the last round")
    cnn.add_argument("--dp-clip", type=float, default=0.0, metavar="C",
                     help="differential privacy: clip each centre's update to L2 norm C before it leaves the centre "
                          "(default: off); see README")
    cnn.add_argument("--dp-noise", type=float, default=0.0, metavar="SIGMA",
                     help="differential privacy: add Gaussian noise of SD SIGMA * C to each clipped update (default: 0)")


def _run_config(args: argparse.Namespace) -> dict:
    return {"penalizer": float(args.penalizer), "min-centre-events": int(args.min_centre_events),
            "min-events": int(args.min_events), "min-centres": int(args.min_centres),
            "max-rounds": int(args.max_rounds), "round-timeout": float(args.round_timeout),
            "time-limit": float(args.time_limit), "wait-timeout": float(getattr(args, "wait_timeout", 60.0)),
            "model": args.model, "preset": args.preset, "sequences": args.sequences, "rounds": int(args.rounds),
            "local-epochs": int(args.local_epochs), "strategy": args.strategy,
            "proximal-mu": float(args.proximal_mu), "seed": int(args.seed), "dp-clip": float(args.dp_clip),
            "dp-noise": float(args.dp_noise), "select-round": bool(args.select_round)}


def register(commands: argparse._SubParsersAction) -> None:
    fed = commands.add_parser(
        "federated", help="fit the Cox fusion or train the radiology CNN across centres without pooling their cases "
                          "(Flower)",
        description="Federated training with Flower: each centre keeps its cases and answers with sums (model "
                    "updates and aggregates). --model fusion (default): the server fits the Cox fusion model from "
                    "them; the result equals the pooled Cox model stratified by centre. --model radiology|pathology: "
                    "the CBAM 3D CNN or the patch model trained with FedAvg or FedProx. See README, 'Federated "
                    "training'.")
    sub = fed.add_subparsers(dest="federated_command", metavar="COMMAND", required=True)

    sim = sub.add_parser("simulate", help="one-command local run: split a manifest by centre, one client per centre",
                         description="Split the development cases of a manifest by its 'centre' column, run one Flower "
                                     "ClientApp per centre and the ServerApp in this process, and write DIR/fusion.json "
                                     "(DIR/radiology-<sequences>.pt or DIR/pathology-patch.pt with --model radiology|pathology) "
                                     "registered in DIR/manifest.json, as 'train fusion|radiology|pathology' does.")
    sim.add_argument("--manifest", type=Path, required=True, help="cohort manifest (manifest.csv)")
    sim.add_argument("--scores", type=Path, action="append", default=[], metavar="FILE",
                     help="imaging score table (radiology_scores.csv or pathology_scores.csv); repeat for both")
    sim.add_argument("--out", type=Path, required=True, metavar="DIR", help="weights folder to write into")
    _settings_options(sim)
    _cnn_options(sim)
    add_json_option(sim)
    sim.set_defaults(handler=cmd_simulate)

    srv = sub.add_parser("server", help="the aggregating server: a Flower SuperLink and the federated fit",
                         description="Start a Flower SuperLink, wait for --min-centres clients, fit, write DIR/fusion.json "
                                     "and stop. TLS: --ssl-certfile, --ssl-keyfile, --ssl-ca-certfile (as Flower "
                                     "documents); --insecure only on a trusted network or loopback.")
    srv.add_argument("--out", type=Path, required=True, metavar="DIR", help="weights folder to write into")
    srv.add_argument("--work", type=Path, default=None, metavar="DIR",
                     help="folder for the Flower App and logs (default: DIR/.federated)")
    srv.add_argument("--address", default="0.0.0.0", help="address the centres connect to (default: 0.0.0.0)")
    srv.add_argument("--port", type=positive_int, default=9092, help="Fleet API port for the clients (default: 9092)")
    srv.add_argument("--control-port", type=positive_int, default=9093, help="local Control API port (default: 9093)")
    srv.add_argument("--serverappio-port", type=positive_int, default=9091, help="local ServerAppIo port (default: 9091)")
    srv.add_argument("--wait-timeout", type=float, default=600.0,
                     help="seconds to wait for --min-centres clients to connect (default: 600)")
    tls = srv.add_argument_group("transport")
    tls.add_argument("--insecure", action="store_true", help="plain gRPC without TLS (tests, loopback)")
    tls.add_argument("--ssl-certfile", type=Path, default=None)
    tls.add_argument("--ssl-keyfile", type=Path, default=None)
    tls.add_argument("--ssl-ca-certfile", type=Path, default=None)
    _settings_options(srv)
    _cnn_options(srv)
    add_json_option(srv)
    srv.set_defaults(handler=cmd_server)

    cli = sub.add_parser("client", help="one centre: a Flower SuperNode answering from its own manifest",
                         description="Run a Flower SuperNode for one centre; it reads the development cases of CENTRE "
                                     "from the manifest and answers the server with sums only. Runs until stopped.")
    cli.add_argument("--manifest", type=Path, required=True, help="this centre's cohort manifest (manifest.csv)")
    cli.add_argument("--centre", required=True, help="the centre code of this centre's cases in the manifest")
    cli.add_argument("--scores", type=Path, action="append", default=[], metavar="FILE",
                     help="imaging score table of this centre; repeat for both")
    cli.add_argument("--server", required=True, metavar="HOST:PORT", help="the server's Fleet API address")
    cli.add_argument("--clientappio-port", type=positive_int, default=9094,
                     help="local port between the SuperNode and its ClientApp (default: 9094)")
    group = cli.add_mutually_exclusive_group(required=True)
    group.add_argument("--insecure", action="store_true", help="plain gRPC without TLS (tests, loopback)")
    group.add_argument("--root-certificates", type=Path, default=None, metavar="CA.pem",
                       help="CA certificate that signed the server's certificate (TLS)")
    cli.set_defaults(handler=cmd_client)


def _summary(out: Path, args: argparse.Namespace) -> int:
    import json

    if args.model != "fusion":
        return _cnn_summary(out, args)
    entry = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["models"]["fusion"]
    data = entry["training_data"]
    if args.json:
        print_json({"model": str(out / "fusion.json"), "sha256": entry["sha256"], "training_data": data})
        return 0
    fed = data["federated"]
    print(f"federated fusion: {data['n']} development cases ({data['events']} events) in centres "
          f"{', '.join(fed['centres'])}; {fed['rounds']} rounds, {fed['bytes_sent']} bytes sent, "
          f"{fed['bytes_received']} received; written to {out / 'fusion.json'}")
    for centre, why in fed["refused"].items():
        print(f"  refused: {why}")
    for centre in fed["dropped_out"]:
        print(f"  dropped out: centre {centre} (the fit went on without it)")
    return 0


def _cnn_summary(out: Path, args: argparse.Namespace) -> int:
    import json

    # The entry of the weights this run wrote (a radiology model is registered under its sequence set's name).
    written = json.loads((out / f"federated_{args.model}_run.json").read_text(encoding="utf-8"))["weights_sha256"]
    models = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["models"]
    entry = next(e for e in models.values() if e["sha256"] == written)
    data = entry["training_data"]
    if args.json:
        print_json({"model": str(out / entry["file"]), "sha256": entry["sha256"], "training_data": data})
        return 0
    fed = data["federated"]
    n = data.get("n", data.get("n_development_cases"))
    print(f"federated {args.model} model: {n} development cases in {fed['centres']} centres; "
          f"{fed['strategy']}; {fed['rounds']} rounds, {fed['bytes_sent']} bytes sent, {fed['bytes_received']} "
          f"received; written to {out / entry['file']}")
    return 0


def _simulate_cnn(args: argparse.Namespace) -> int:
    from sarcoma_risk.cohort import Split, read_manifest
    from sarcoma_risk.federated.fedavg import make_fedavg_server_app, make_imaging_client_app
    from sarcoma_risk.federated.flower import LocalGrid, server_context

    manifest = read_manifest(args.manifest)
    centres = sorted({c.centre for c in manifest.cases if c.split is Split.DEVELOPMENT})
    run_config = {**_run_config(args), "out": str(args.out)}
    grid = LocalGrid(make_imaging_client_app(), [{"manifest": str(args.manifest), "centre": c} for c in centres], run_config)
    try:
        make_fedavg_server_app()(grid, server_context(run_config))
    finally:
        grid.close()
    return _summary(args.out, args)


def cmd_simulate(args: argparse.Namespace) -> int:
    from sarcoma_risk.cohort import Split, read_manifest
    from sarcoma_risk.federated.flower import LocalGrid, make_client_app, make_server_app, server_context
    from sarcoma_risk.fusion.table import table_from_manifest
    from sarcoma_risk.survival.scores import read_score_tables

    if args.model != "fusion":
        return _simulate_cnn(args)
    manifest = read_manifest(args.manifest)
    table = table_from_manifest(manifest, read_score_tables(args.scores), split=Split.DEVELOPMENT)
    parts = {str(c): rows for c, rows in table.groupby("centre")}
    run_config = {**_run_config(args), "out": str(args.out)}
    client = make_client_app(lambda context: (context.node_config["centre"], parts[context.node_config["centre"]]))
    grid = LocalGrid(client, [{"centre": c} for c in parts], run_config)
    try:
        make_server_app()(grid, server_context(run_config))
    finally:
        grid.close()
    return _summary(args.out, args)


def cmd_server(args: argparse.Namespace) -> int:
    from sarcoma_risk.errors import InvalidInput
    from sarcoma_risk.federated.deploy import Tls, run_server

    tls_files = (args.ssl_certfile, args.ssl_keyfile, args.ssl_ca_certfile)
    if args.insecure == any(f is not None for f in tls_files) or (not args.insecure and not all(tls_files)):
        raise InvalidInput("transport: give either --insecure or all of --ssl-certfile, --ssl-keyfile and "
                           "--ssl-ca-certfile")
    run_server(args.out, args.work or args.out / ".federated", _run_config(args), address=args.address,
               fleet_port=args.port, control_port=args.control_port, serverappio_port=args.serverappio_port,
               tls=Tls(*tls_files), timeout=args.time_limit + args.wait_timeout + 60)
    return _summary(args.out, args)


def cmd_client(args: argparse.Namespace) -> int:
    import os
    import sys

    from sarcoma_risk.federated.deploy import client_command, flower_environment
    from sarcoma_risk.federated.flower import manifest_table_loader

    class _Context:  # the node config the SuperNode will hand its ClientApp, checked here first
        node_config = {"manifest": str(args.manifest), "centre": args.centre,
                       "scores": ",".join(str(s) for s in args.scores)}

    name, table = manifest_table_loader(_Context())
    print(f"centre {name}: {len(table)} development cases ({int(table['event'].sum())} events); connecting to "
          f"{args.server}", flush=True)
    command = client_command(args.manifest, args.centre, args.server, scores=args.scores,
                             clientappio_port=args.clientappio_port, root_certificates=args.root_certificates)
    sys.stdout.flush()
    # replace this process by the SuperNode, so that stopping the client (a signal to this pid) stops it
    os.execve(command[0], command, flower_environment())
    return 0  # not reached
