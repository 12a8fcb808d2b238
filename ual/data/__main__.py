"""``python -m ual.data``: inspect a dataset, or fetch every mirror file of the manifest into a folder.

    python -m ual.data show --dataset gsm8k --split train [--size 3 --seed 0 --mirror DIR]
    python -m ual.data --dataset gsm8k --split train          # the same (the command before ``show`` existed)
    python -m ual.data fetch [--dest DIR] [--base-url URL] [--no-progress]

``fetch`` downloads and verifies every manifest file into ``--dest``, else the mirror folder (env
``UAL_DATA_MIRROR``, ``~/.cache/ual/data``). Exit status 1 with one message (the refused files; the unreachable
files with their URLs and destinations) when a file cannot be made verified. The files one experiment reads,
with the record of where each came from: ``python -m ual.fetch --experiment FILE`` (the workflow's
``fetch_data``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ual.data import DATASETS, MANIFEST, DataError, load_records, resolve_mirror, subsample
from ual.data.fetch import fetch_files


def _show(args: argparse.Namespace) -> None:
    records = subsample(load_records(args.dataset, args.split, args.mirror), args.size, args.seed)
    print(json.dumps(records, indent=2, ensure_ascii=False))


def _fetch(args: argparse.Namespace) -> None:
    dest = args.dest or resolve_mirror(None)
    result = fetch_files(list(MANIFEST.values()), dest, base_url=args.base_url, progress=not args.no_progress)
    logging.getLogger("ual.data").info(
        "%s: %d files verified in place, %d downloaded and verified",
        dest, len(result.verified), len(result.downloaded),
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0].startswith("--") and argv[0] != "--help":
        argv = ["show", *argv]  # the inspection command from before the subcommands
    parser = argparse.ArgumentParser(prog="python -m ual.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="print normalised records of a registered dataset")
    show.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    show.add_argument("--split", required=True)
    show.add_argument("--size", type=int, default=3)
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--mirror", default=None)
    fetch = commands.add_parser("fetch", help="download and verify every manifest file into a folder")
    fetch.add_argument("--dest", type=Path, default=None, help="default: UAL_DATA_MIRROR, ~/.cache/ual/data")
    fetch.add_argument("--base-url", default=None, help="file server (default: UAL_DATA_BASE_URL, GitHub)")
    fetch.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "show":
            _show(args)
        else:
            _fetch(args)
    except (DataError, ValueError) as exc:  # ConfigError is a ValueError
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
