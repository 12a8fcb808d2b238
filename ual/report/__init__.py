"""Report stage: the paper's tables and figures from result files only (no model, no judge).

``ARTIFACTS`` (``ual.report.artifacts``) is the one list of the tables and figures, read by the workflow, the
tests and the HTML report's captions; ``python -m ual.report tables|figures`` (``ual.report.build``) builds
every one of them. Importing this package loads neither pandas nor matplotlib (the workflow imports it).
"""

from __future__ import annotations

from ual.report.artifacts import ARTIFACTS, FIGURES, TABLES, Artifact, get_artifact

__all__ = ["ARTIFACTS", "FIGURES", "TABLES", "Artifact", "get_artifact", "main"]


def main(argv: list[str] | None = None) -> None:
    """``python -m ual.report``: see ``ual.report.build``."""
    from ual.report.build import main as build_main

    build_main(argv)
