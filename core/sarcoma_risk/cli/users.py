"""``sarcoma-risk users add|list|revoke|save-token``: API tokens of the case-record server.

``add``, ``list`` and ``revoke`` work on the store the server serves (``--store postgresql://...``
or its SQLite file, for the person who runs the server) or through the server itself (``--store
https://...`` with an admin's token). ``add`` prints the new token once, on standard output and
nowhere else; only its sha256 is stored. ``save-token`` keeps a user's own token in their per-user
token file, where the Slicer module, the QuPath bridge and the command line find it.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from sarcoma_risk.cli.common import add_json_option, add_store_option, format_table, positive_int, print_json
from sarcoma_risk.records.accounts import MAX_EXPIRES_DAYS, Role


def register(commands: argparse._SubParsersAction) -> None:
    users = commands.add_parser("users", help="API tokens of the case-record server: add, list, revoke, save-token")
    sub = users.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("add", help="issue a token to a user (printed once)",
                       description="Issue an API token to NAME with ROLE and print it once on standard output (only "
                                   "the token, so it can be piped). Roles: radiologist (writes radiology), "
                                   "pathologist (writes pathology), coordinator (clinical, fusion, exports, the case "
                                   "list), admin (everything, and users). Give the token to its user over a private "
                                   "channel; they save it with 'sarcoma-risk users save-token'.")
    p.add_argument("name", help="the user's login, e.g. j.smith")
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--expires-days", type=positive_int, default=365, metavar="DAYS",
                   help=f"days until the token expires (default 365, at most {MAX_EXPIRES_DAYS})")
    add_store_option(p)
    p.set_defaults(handler=cmd_add)

    p = sub.add_parser("list", help="users with a valid token (--all: every token ever issued)")
    p.add_argument("--all", action="store_true", help="also expired and revoked tokens")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("revoke", help="revoke a user's tokens (a running server refuses them within 2 seconds)")
    p.add_argument("name")
    add_store_option(p)
    p.set_defaults(handler=cmd_revoke)

    p = sub.add_parser("save-token", help="save your own token in your per-user token file",
                       description="Read your API token from standard input (or a prompt that does not echo it), "
                                   "check it with the server given by --store (or $SARCOMA_RISK_STORE) when that is "
                                   "a server URL, and save it in your per-user token file, readable by you only.")
    add_store_option(p)
    p.set_defaults(handler=cmd_save_token)


def cmd_add(args: argparse.Namespace) -> int:
    from sarcoma_risk.records import open_store

    with open_store(args.store, mode="a") as store:
        token = store.add_user(args.name, args.role, expires_days=args.expires_days)
        where = store.location
    print(token)
    print(f"token for {args.name} ({args.role}) at {where}, valid {args.expires_days} days; it is shown only now. "
          "The user saves it with 'sarcoma-risk users save-token'", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from sarcoma_risk.provenance import utc_now
    from sarcoma_risk.records import open_store

    with open_store(args.store, mode="r") as store:
        accounts = store.users(include_past=args.all)
        where = store.location
    now = utc_now()
    rows = [{**a.to_dict(), "status": a.status(now)} for a in accounts]
    if args.json:
        print_json(rows)
    elif rows:
        print(format_table(rows, ["name", "role", "status", "created_utc", "created_by", "expires_utc", "revoked_utc"]))
    else:
        print(f"no user has a valid token at {where}; add one with 'sarcoma-risk users add NAME --role ROLE'")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from sarcoma_risk.errors import InvalidInput
    from sarcoma_risk.records import open_store

    with open_store(args.store, mode="r+") as store:
        revoked = store.revoke_user(args.name)
    if not revoked:
        raise InvalidInput(f"user {args.name!r} has no token to revoke ('sarcoma-risk users list --all' shows them)")
    print(f"revoked {revoked} token(s) of {args.name}; a running server refuses them within 2 seconds")
    return 0


def cmd_save_token(args: argparse.Namespace) -> int:
    from sarcoma_risk.records.credentials import check_token_text, save_token
    from sarcoma_risk.records.location import StoreKind, StoreLocation
    from sarcoma_risk.records.remote import HttpStore
    from sarcoma_risk.settings import default_store

    token = (getpass.getpass("API token: ") if sys.stdin.isatty() else sys.stdin.readline()).strip()
    check_token_text(token, "the token given")
    where = StoreLocation.parse(args.store if args.store is not None else default_store())
    if where.kind is StoreKind.HTTP:
        with HttpStore(where.target, "r", token=token) as store:  # refuses an unknown, expired or revoked token
            account = store.user
        print(f"the server knows this token as {account.name} ({account.role.value})", file=sys.stderr)
    path = save_token(token)
    print(f"token saved in {path} (readable by you only)", file=sys.stderr)
    return 0
