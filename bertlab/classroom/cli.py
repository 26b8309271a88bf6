"""`bertlab class export CODE [--json | --csv] [--poll ID]`: a live class's answers from the store the
environment names (BERTLAB_CLASS_STORE / BERTLAB_CLASS_DB, as the app reads them)."""

from __future__ import annotations

import argparse
import json

from . import open_store, store_url


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `class` command and its subcommands, on bertlab's command line."""
    klass = sub.add_parser("class", help="a live class's answers: export CODE --json|--csv")
    actions = klass.add_subparsers(dest="class_command", required=True)
    export = actions.add_parser("export", help="the room's answers per poll (from BERTLAB_CLASS_STORE or BERTLAB_CLASS_DB)")
    export.add_argument("code", help="the 6-letter class code")
    what = export.add_mutually_exclusive_group()
    what.add_argument("--json", action="store_true", help='one object: {"code", "students", "polls": [...]}')
    what.add_argument("--csv", action="store_true", help="one row per answer: poll, kind, student, answer, at")
    export.add_argument("--poll", type=int, help="only this poll (CSV)")
    export.add_argument("--store", help="a store URL instead of the environment's (sqlite:///path, redis://host:port/db)")


def run(args: argparse.Namespace) -> int:
    store = open_store(args.store or store_url())
    try:
        if args.json:
            print(json.dumps(store.export(args.code)))
        elif args.csv:
            print(store.export_csv(args.code, args.poll), end="")
        else:
            summary = store.export(args.code)
            print(f"class {summary['code']}: {summary['students']} students, {len(summary['polls'])} polls ({store.describe()})")
            for poll in summary["polls"]:
                counts = ", ".join(f"{answer} {count}" for answer, count in poll["histogram"].items()) or "no answers"
                print(f"  poll {poll['id']} ({poll['kind']}): {poll['prompt']}\n    {len(poll['answers'])} answers: {counts}")
    finally:
        store.close()
    return 0
