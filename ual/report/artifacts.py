"""The paper's tables and figures: the one list of them.

Each ``Artifact`` has its name (the file stem under ``results/<exp>/report/{tables,figures}/``, published to
``paper_tables/<exp>/`` or ``figures/<exp>/``, and the
workflow's target rule), its kind, its title and its caption in the workflow's HTML report
(``workflow/report/captions/<name>.rst``). Read by ``ual.report`` (what ``make_tables`` / ``make_figures``
build, in this order), ``workflow/rules/common.smk`` (targets and outputs), the tests and the HTML report.
Adding a table: one row here, its builder in ``ual.report`` (``BUILDERS``) and its caption file. This module
imports nothing of ``ual``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ARTIFACTS", "CAPTIONS_DIR", "FIGURES", "TABLES", "Artifact", "get_artifact"]

CAPTIONS_DIR = "workflow/report/captions"  # relative to the repository root
EXTENSIONS = {"table": ("md", "csv", "tex", "provenance.json"), "figure": ("png", "pdf")}
REPORT_DIRS = {"table": "tables", "figure": "figures"}  # under results/<exp>/report/, where the workflow writes
PUBLISHED_DIRS = {"table": "paper_tables", "figure": "figures"}  # the deliverables (ual.report.publish)


@dataclass(frozen=True)
class Artifact:
    """One table or figure."""

    name: str
    kind: str  # "table" or "figure"
    title: str  # a table's heading and LaTeX caption ({scenario}: the ablation one); a figure's subject
    drawn: bool = True  # a figure drawn by ual.report (with its data sidecar), not copied from a stage

    def __post_init__(self) -> None:
        if self.kind not in EXTENSIONS:
            known = ", ".join(EXTENSIONS)
            raise ValueError(f"artifact {self.name}: kind '{self.kind}' is not one of {known}")

    @property
    def caption(self) -> str:
        """Its caption file in the HTML report, relative to the repository root."""
        return f"{CAPTIONS_DIR}/{self.name}.rst"

    @property
    def extensions(self) -> tuple[str, ...]:
        """The files it is written as (a table: Markdown, CSV, LaTeX and its provenance sidecar)."""
        data = ("png.data.json",) if self.kind == "figure" and self.drawn else ()
        return EXTENSIONS[self.kind] + data

    def files(self, experiment: str) -> list[str]:
        """Its files as the workflow writes them: ``results/<exp>/report/tables/<name>.md``, ..."""
        return [f"results/{experiment}/report/{REPORT_DIRS[self.kind]}/{self.name}.{ext}" for ext in self.extensions]

    def published_dir(self, experiment: str) -> str:
        """Where ``python -m ual.report.publish`` puts it: ``paper_tables/<exp>`` or ``figures/<exp>``."""
        return f"{PUBLISHED_DIRS[self.kind]}/{experiment}"


ARTIFACTS: tuple[Artifact, ...] = (
    Artifact("table_main", "table", "Main results: scenario x method (percent)"),
    Artifact("table_ablation", "table", "Ablation on the {scenario} scenario (percent)"),
    Artifact("table_crosscheck", "table", "GSM8K: the same generations under four scorers (percent)"),
    Artifact("table_clustering", "table", "Token clustering of hidden states by target token"),
    Artifact("table_calibration", "table", "Teacher-forced likelihood and calibration of held-out references "
             "(mean over seeds; 95 % sample-bootstrap intervals of the first seed; differences paired)"),
    Artifact("table_uncertainty", "table", "Elicited uncertainty by dataset and source"),
    Artifact("table_epsilon", "table", "Label smoothing each method trains with, by scenario and dataset"),
    Artifact("table_contrasts", "table", "UAL against its controls, paired (95 % intervals)"),
    Artifact("fig_uncertainty", "figure", "Elicited uncertainty by dataset and source"),
    Artifact("fig_clusters", "figure", "t-SNE of hidden states by target token ({scenario} scenario)",
             drawn=False),
    Artifact("fig_ablation", "figure", "Results against eps_max ({scenario} scenario)"),
    Artifact("fig_loss", "figure", "Training loss per step"),
    Artifact("fig_calibration", "figure", "Reliability of held-out references ({scenario} scenario)"),
    Artifact("fig_contrasts", "figure", "UAL minus its controls: held-out NLL, paired ({scenario} scenario)"),
)
TABLES: tuple[Artifact, ...] = tuple(a for a in ARTIFACTS if a.kind == "table")
FIGURES: tuple[Artifact, ...] = tuple(a for a in ARTIFACTS if a.kind == "figure")


def get_artifact(name: str) -> Artifact:
    """The artifact ``name``; an unknown name is an error listing the known ones."""
    for artifact in ARTIFACTS:
        if artifact.name == name:
            return artifact
    raise ValueError(f"unknown table or figure '{name}'; known: {', '.join(a.name for a in ARTIFACTS)}")
