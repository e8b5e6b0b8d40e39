"""`aup-milter archive`: the permanent archive from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from archive import records
from archive.blobstore import BlobStore
from milter.commands import open_database
from milter.settings import Config


def cmd_verify(args: argparse.Namespace, config: Config) -> int:
    database = open_database(config)
    blobs = BlobStore(Path(config.settings.storage.blobs))

    def progress(done: int, total: int) -> None:
        if done % 1000 == 0 or done == total:
            print(f"\rverified {done}/{total} records", end="", file=sys.stderr, flush=True)

    with database.read() as connection:
        broken = records.verify(connection, blobs, progress)
        total, head = records.head(connection)
    print(file=sys.stderr)
    if broken:
        print(f"archive verify: FAILED at {broken}")
        return 1
    print(f"archive verify: ok, {total} records, chain head {head}")
    return 0


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("archive", parents=[common], help="the permanent archive")
    archive_sub = parser.add_subparsers(dest="archive_command", required=True)
    archive_sub.add_parser("verify", parents=[common], help="re-read every record and blob and check the hash chain").set_defaults(run=cmd_verify)
