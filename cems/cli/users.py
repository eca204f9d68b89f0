"""``cems users add|list|remove SITE.yaml``: manage web logins (Argon2id-hashed passwords)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from cems.config import load_site
from cems.errors import InputError
from cems.web.auth import ROLES, USERS_FILE_NAME, UserFile


def register(subparsers: Any) -> None:
    """Add the ``users`` command."""
    parser = subparsers.add_parser("users", help="manage web logins (operator/broker/resident)",
                                   description="Users file: <data_dir>/users.json unless "
                                   "--users FILE. Passwords are read from the terminal or, "
                                   "with --password-stdin, from the first line of stdin.")
    sub = parser.add_subparsers(dest="users_command", metavar="ACTION")
    sub.required = True
    add = sub.add_parser("add", help="add a user (--replace to replace an existing one)")
    add.add_argument("site", help="site YAML file")
    add.add_argument("username")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--household", help="household id (residents)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from stdin instead of prompting")
    add.add_argument("--users", type=Path, help="users file")
    add.add_argument("--replace", action="store_true",
                     help="replace the user if the name exists (new password, role and "
                     "household; their sessions end at the next start of `cems serve`)")
    add.set_defaults(handler=run_add)
    listing = sub.add_parser("list", help="list users (no hashes)")
    listing.add_argument("site")
    listing.add_argument("--users", type=Path)
    listing.set_defaults(handler=run_list)
    remove = sub.add_parser("remove", help="remove a user")
    remove.add_argument("site")
    remove.add_argument("username")
    remove.add_argument("--users", type=Path)
    remove.set_defaults(handler=run_remove)


def users_path(site: str, given: Path | None) -> Path:
    """The users file for a site."""
    if given is not None:
        return given
    return Path(load_site(site).site.data_dir) / USERS_FILE_NAME


def run_add(args: argparse.Namespace) -> int:
    """Add a user; an existing name is refused unless ``--replace`` (exit 2)."""
    config = load_site(args.site)
    path = args.users or Path(config.site.data_dir) / USERS_FILE_NAME
    users = UserFile(path)
    existing = users.users().get(args.username)
    if existing is not None and not args.replace:
        raise InputError(f"user {args.username!r} already exists in {path} (role "
                         f"{existing.role}); pass --replace to replace it, or choose "
                         "another name")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.username}: ")
        if getpass.getpass("again: ") != password:
            raise InputError("the passwords differ")
    users.add(args.username, args.role, password, args.household,
              known_households={h.id for h in config.households})
    replaced = " (replaced; their sessions end)" if existing is not None else ""
    print(f"user {args.username} ({args.role}) saved in {path}{replaced}; restart "
          "`cems serve` to apply")
    return 0


def run_list(args: argparse.Namespace) -> int:
    """List users."""
    for user in UserFile(users_path(args.site, args.users)).users().values():
        print(f"{user.username}\t{user.role}\t{user.household_id or ''}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """Remove a user."""
    path = users_path(args.site, args.users)
    UserFile(path).remove(args.username)
    print(f"user {args.username} removed from {path}; restart `cems serve` to end their "
          "sessions")
    return 0
