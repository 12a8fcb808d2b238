"""Stage 0: fetch and verify the mirror files an experiment reads, and record where each came from.

For each data group of the experiment (``ual.inputs``: train, each task, references, calibration), every
manifest file of the group is verified (size, sha256) in the experiment's mirror folder (``data.mirror``, env
``UAL_DATA_MIRROR``, ``~/.cache/ual/data``) and downloaded from its upstream repository at the pinned commit
where absent (``ual.data.fetch``); ``--record`` writes the group's data sources record, which the jobs that read
the group take as input (the workflow's rule ``fetch_data`` runs one per group). Exit status 1 with one
message when a file cannot be made verified.

    python -m ual.fetch --experiment experiments/tiny.yaml [--group train] [--record results/tiny/data/train.json]
        [--base-url URL] [--no-progress]

Without an experiment, ``python -m ual.data fetch --dest DIR`` fetches every manifest file into a folder.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ual.data import DataError, resolve_mirror
from ual.data.fetch import fetch_files
from ual.experiment import load_experiment
from ual.inputs import data_groups, data_sources, manifest_files, write_sources_record

logger = logging.getLogger(__name__)


def fetch_experiment(experiment_file: Path, group: str | None, record: Path | None, base_url: str | None,
                     progress: bool = True) -> None:
    """Verify (and where absent download) the files of ``group`` (all groups if None); write ``record``."""
    experiment = load_experiment(experiment_file)
    if group and group not in data_groups(experiment):
        raise DataError(f"--group {group}: the experiment's data groups are {data_groups(experiment)}")
    dest = resolve_mirror(experiment.data.mirror)
    result = fetch_files(manifest_files(experiment, group), dest, base_url=base_url, progress=progress)
    logger.info("%s: %d files verified in place, %d downloaded and verified",
                dest, len(result.verified), len(result.downloaded))
    if record:
        write_sources_record(record, experiment, group, data_sources(experiment, group))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ual.fetch", description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", type=Path, required=True)
    parser.add_argument("--group", default=None, help="only this data group (train, a task, references)")
    parser.add_argument("--record", type=Path, default=None, help="write the data sources record of the files")
    parser.add_argument("--base-url", default=None, help="file server (default: UAL_DATA_BASE_URL, GitHub)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        fetch_experiment(args.experiment, args.group, args.record, args.base_url, not args.no_progress)
    except (DataError, ValueError) as exc:  # ConfigError is a ValueError
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
