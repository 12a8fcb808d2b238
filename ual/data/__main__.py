"""``python -m ual.data``: inspect a dataset, or fetch the mirror files an experiment reads.

    python -m ual.data show --dataset gsm8k --split train [--size 3 --seed 0 --mirror DIR]
    python -m ual.data --dataset gsm8k --split train          # the same (the command before ``show`` existed)
    python -m ual.data fetch [--experiment experiments/tiny.yaml [--group train]] [--dest DIR]
                             [--base-url URL] [--record results/tiny/data/train.json] [--no-progress]

``fetch`` downloads and verifies the manifest files the experiment reads (all manifest files without
``--experiment``; only those of one data group with ``--group``) into ``--dest``, else the experiment's
mirror folder (``data.mirror``, env ``UAL_DATA_MIRROR``, ``~/.cache/ual/data``); ``--record`` then writes the
data sources record of what was fetched (``ual.inputs``; the workflow's rule fetch_data runs one per group).
Exit status 1 with one message (the refused files; the unreachable files with their URLs and destinations)
when a file cannot be made verified.
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
    from ual.experiment import load_experiment
    from ual.inputs import data_groups, data_sources, manifest_files, write_sources_record

    experiment = load_experiment(args.experiment) if args.experiment else None
    if (args.record or args.group) and experiment is None:
        raise DataError("--group and --record need --experiment")
    if args.record and args.dest is not None:
        raise DataError("--record describes the experiment's own mirror folder; it does not go with --dest")
    if args.group and args.group not in data_groups(experiment):
        raise DataError(f"--group {args.group}: the experiment's data groups are {data_groups(experiment)}")
    entries = manifest_files(experiment, args.group) if experiment else list(MANIFEST.values())
    dest = args.dest or resolve_mirror(experiment.data.mirror if experiment else None)
    result = fetch_files(entries, dest, base_url=args.base_url, progress=not args.no_progress)
    logging.getLogger("ual.data").info(
        "%s: %d files verified in place, %d downloaded and verified",
        dest, len(result.verified), len(result.downloaded),
    )
    if args.record:
        write_sources_record(args.record, experiment, args.group, data_sources(experiment, args.group))


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
    fetch = commands.add_parser("fetch", help="download and verify the mirror files an experiment reads")
    fetch.add_argument("--experiment", type=Path, default=None, help="default: every manifest file")
    fetch.add_argument("--dest", type=Path, default=None, help="default: the experiment's mirror folder")
    fetch.add_argument("--base-url", default=None, help="file server (default: UAL_DATA_BASE_URL, GitHub)")
    fetch.add_argument("--group", default=None, help="only this data group (train, a task, references)")
    fetch.add_argument("--record", type=Path, default=None, help="write the data sources record of the files")
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
