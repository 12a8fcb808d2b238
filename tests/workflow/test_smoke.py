"""The whole DAG runs for real on a cut-down experiment, every table and figure parses, and reruns are minimal.

tests/fixtures/smoke.yaml: the packaged SmolLM2 cut to 2 layers, 4 + 4 training samples, 2 items per benchmark.
The run happens in a temporary working directory (``--directory``), so the repository stays clean. It starts
as on a fresh connected machine: no UAL_DATA_MIRROR, an empty user cache folder, so rule fetch_data downloads
the data from the upstream repositories' raw-file URLs (here the local ``raw_file_server``, which serves the
shared mirror's files under that layout); a second run of the first stages on ../shared/data must give the
same result files. The last test interrupts a generation (SIGINT), retrains with another learning rate and
checks that no output of the old model survives (issue 15).

Run: UAL_DATA_MIRROR=../shared/data python -m pytest tests/workflow/test_smoke.py   (about 3-5 minutes on CPU)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
import yaml

from ual import report
from ual.variants import Variant

REPO = Path(__file__).resolve().parents[2]
TABLES = [table.name for table in report.TABLES]
FIGURES = [figure.name for figure in report.FIGURES]
EXPENSIVE = ("elicit_scores", "map_epsilon", "train_model", "analyse_base_model", "analyse_models")

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def _environment(work: Path, mirror: Path | None = None, base_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("UAL_DATA_MIRROR", "UAL_DATA_BASE_URL")}
    env["UAL_MODEL_CACHE"] = str((REPO / "resources" / "models").resolve())
    env["XDG_CACHE_HOME"] = str(work / ".cache")  # the user cache folder: empty, as on a fresh machine
    env |= {"UAL_DATA_MIRROR": str(mirror.resolve())} if mirror else {}
    env |= {"UAL_DATA_BASE_URL": base_url} if base_url else {}
    return env


def _command(work: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(work), "--configfile", str(work / "experiments" / "smoke.yaml"), *args]


def snakemake(work: Path, *args: str, mirror: Path | None = None, base_url: str | None = None):
    """Snakemake in ``work``; the data come from ``mirror``, else from the user cache ``work/.cache/ual/data``
    (filled by rule fetch_data from ``base_url``)."""
    return subprocess.run(_command(work, *args), cwd=work, capture_output=True, text=True, timeout=1500,
                          env=_environment(work, mirror, base_url))


def _workdir(tmp_path_factory, name: str) -> Path:
    work = tmp_path_factory.mktemp(name)
    (work / "experiments").mkdir()
    shutil.copy(REPO / "tests" / "fixtures" / "smoke.yaml", work / "experiments" / "smoke.yaml")
    return work


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, raw_file_server_session):
    work = _workdir(tmp_path_factory, "smoke")
    result = snakemake(work, "--cores", "2", base_url=raw_file_server_session.url)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return work


def test_the_data_was_fetched_into_the_user_cache_and_verified(smoke_run, raw_file_server_session):
    from ual.data import MANIFEST
    from ual.inputs import read_sources_records

    fetched = smoke_run / ".cache" / "ual" / "data"
    records = sorted((smoke_run / "results" / "smoke" / "data").glob("*.json"))
    assert [p.stem for p in records] == ["alpacaeval", "calibration", "gsm8k", "math", "references", "train"]
    assert {json.loads(p.read_text())["mirror"] for p in records} == {str(fetched.resolve())}
    # in the order the report reads them (the experiment's data groups): a source read by two groups lists its
    # roles in that order
    from ual.experiment import load_experiment
    from ual.inputs import data_groups

    groups = data_groups(load_experiment(smoke_run / "experiments" / "smoke.yaml"))
    sources = read_sources_records([smoke_run / "results" / "smoke" / "data" / f"{g}.json" for g in groups])
    names = [s["file"] for s in sources]
    fetched_files = [p for p in fetched.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert sorted(names) == sorted(str(p.relative_to(fetched)) for p in fetched_files)
    served = {path for path, _ in raw_file_server_session.requests}
    for source in sources:
        entry = MANIFEST[source["file"]]
        assert source["present"] and source["matches_manifest"] and source["sha256"] == entry.sha256
        assert f"/{entry.repository}/{entry.commit}/{entry.path}" in served
    provenance = json.loads((smoke_run / "paper_tables" / "smoke" / "table_main.provenance.json").read_text())
    assert sorted(provenance["data_sources"], key=str) == sorted(sources, key=str)


def test_the_fetched_mirror_gives_the_same_results_as_the_shared_mirror(smoke_run, tmp_path_factory,
                                                                         data_mirror):
    # The first stages again, on ../shared/data; the elicitation cache is copied so that the elicitor is not
    # run again: a sample it has not scored (different data) would be scored afresh and differ.
    work = _workdir(tmp_path_factory, "smoke_shared")
    shutil.copytree(smoke_run / "resources" / "cache", work / "resources" / "cache")
    outputs = ["results/smoke/elicit/scores.jsonl"] + [
        f"results/smoke/epsilon/mixed/{Variant(method).epsilon_name(0)}.jsonl"
        for method in ("ual", "ual_shuffled")
    ]  # the per-sample epsilon (scores joined to the training records by id) and its seeded permutation
    result = snakemake(work, "--cores", "2", *outputs, mirror=data_mirror)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for output in outputs:
        assert (work / output).read_bytes() == (smoke_run / output).read_bytes(), output
    shared, fetched = (json.loads((w / "results" / "smoke" / "data" / "train.json").read_text())
                       for w in (work, smoke_run))
    assert shared["mirror"] == str(data_mirror.resolve()) and shared["sources"] == fetched["sources"]


def _planned_while(work: Path, path: Path, content: bytes, expensive: tuple[str, ...] = EXPENSIVE) -> str:
    """What `snakemake -n` plans while ``path`` holds ``content`` (restored afterwards); none of the
    ``expensive`` stages may be among it."""
    original = path.read_bytes()
    path.write_bytes(content)
    try:
        result = snakemake(work, "-n")
    finally:
        path.write_bytes(original)
    assert result.returncode == 0, result.stderr[-3000:]
    for rule in expensive:
        planned = f"rule {rule}:" in result.stdout or f"localrule {rule}:" in result.stdout
        assert not planned, f"{rule} would rerun"
    return result.stdout


def test_a_changed_mirror_file_reruns_exactly_what_read_it(smoke_run):
    path = smoke_run / ".cache" / "ual" / "data" / "math" / "math500.jsonl"
    edited = path.read_bytes().replace(b"\\\\frac", b"\\\\dfrac", 1)  # one edited problem, same records
    # MATH-500 is the math task's items and the analysis stage's references: both groups are re-verified, the
    # teacher-forced analysis reruns, training and elicitation do not
    planned = _planned_while(smoke_run, path, edited, ("elicit_scores", "map_epsilon", "train_model"))
    assert "group=math" in planned and "group=calibration" in planned and planned.count("fetch_data:") == 2
    assert "rule analyse_base_model:" in planned or "localrule analyse_base_model:" in planned
    assert "task=math" in planned and "task=gsm8k" not in planned and "task=alpacaeval" not in planned
    restored = snakemake(smoke_run, "-n")
    assert "Nothing to be done" in restored.stdout + restored.stderr


def test_every_table_is_produced_and_parses(smoke_run):
    for name in TABLES:
        base = smoke_run / "paper_tables" / "smoke" / name
        md = base.with_suffix(".md").read_text()
        assert md.startswith("# ") and "| " in md and "Provenance: experiment smoke" in md
        assert "\\begin{tabular}" in base.with_suffix(".tex").read_text()
        table = pd.read_csv(base.with_suffix(".csv"))
        assert len(table) > 0
        provenance = json.loads(Path(f"{base}.provenance.json").read_text())
        assert provenance["experiment"] == "smoke" and provenance["seeds"] == [0]
    main = pd.read_csv(smoke_run / "paper_tables" / "smoke" / "table_main.csv")
    assert {"SFT", "LS (constant eps)", "UAL", "UAL - SFT (relative %)"} <= set(main["row"])
    paper = main[main["row"] == "paper, UAL vs SFT (%)"].iloc[0]
    assert float(paper["AlpacaEval win rate (%)"]) == 10.62 and float(paper["low-entropy avg."]) == 1.81
    crosscheck = pd.read_csv(smoke_run / "paper_tables" / "smoke" / "table_crosscheck.csv")
    assert crosscheck["row"].tolist() == ["SFT", "LS (constant eps)", "UAL"]  # the mixed scenario
    assert {"MetaMath verbatim", "lm-eval strict-match", "lm-eval flexible-extract"} <= set(crosscheck.columns)
    calibration = pd.read_csv(smoke_run / "paper_tables" / "smoke" / "table_calibration.csv")
    # the base model and every variant of the mixed scenario, on each task type's references
    assert len(calibration) == 3 * 6 and set(calibration["references"]) == {4}
    assert calibration["model"].tolist()[:6] == ["base model (untrained)", "SFT", "LS (constant eps)", "UAL",
                                                 "UAL, shuffled eps", "UAL (eps_max = 0.1)"]
    assert set(calibration.loc[calibration.model == "SFT", "NLL - SFT"]) == {"reference"}
    uncertainty = pd.read_csv(smoke_run / "paper_tables" / "smoke" / "table_uncertainty.csv")
    assert set(uncertainty["source"]) == {"verbalized (score 1-10)", "entropy (nats)"}  # compare_uncertainty


def test_every_figure_is_produced_and_parses(smoke_run):
    for name in FIGURES:
        png = smoke_run / "figures" / "smoke" / f"{name}.png"
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
        assert (smoke_run / "figures" / "smoke" / f"{name}.pdf").read_bytes().startswith(b"%PDF")


def test_every_metric_records_its_provenance(smoke_run):
    metrics = sorted(p for p in (smoke_run / "results" / "smoke").glob("seed0/evaluate/*/*/*.json")
                     if p.stem in {"alpacaeval", "gsm8k", "math"})
    assert len(metrics) == 5 * 3  # sft, ls, ual, ual_shuffled, ual_epsmax0.1 x 3 tasks
    for path in metrics:
        data = json.loads(path.read_text())
        # the identity comes from the command line that made the file (the path is only its address)
        assert data["identity"] == {"experiment": "smoke", "scenario": "mixed", "variant": path.parent.name,
                                    "seed": 0}
        assert data["provenance"]["git_sha"] and data["provenance"]["versions"]["transformers"]


def test_second_run_does_nothing(smoke_run):
    result = snakemake(smoke_run, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_touching_the_experiment_file_reruns_nothing(smoke_run):
    path = smoke_run / "experiments" / "smoke.yaml"
    os.utime(path)
    result = snakemake(smoke_run, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_editing_evaluation_settings_reruns_only_evaluation_and_report(smoke_run):
    path = smoke_run / "experiments" / "smoke.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["evaluate"]["max_new_tokens"]["gsm8k"] = 9
    planned = _planned_while(smoke_run, path, yaml.safe_dump(raw).encode())
    assert "generate_outputs" in planned and "score_task" in planned and "make_tables" in planned


def test_snakemake_html_report_embeds_the_figures(smoke_run):
    result = snakemake(smoke_run, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (smoke_run / "report.html").read_text(errors="replace")
    assert "fig_clusters.png" in html and "table_main.csv" in html


# ---- issue 15: an interrupted generation, then a retrained model: no output of the old model survives ----

TARGET = "results/smoke/seed0/generate/mixed/sft/alpacaeval.json"
SFT_MODEL = "results/smoke/seed0/train/mixed/sft"


def _edit_experiment(work: Path, edit) -> None:
    path = work / "experiments" / "smoke.yaml"
    raw = yaml.safe_load(path.read_text())
    edit(raw)
    path.write_text(yaml.safe_dump(raw))


def _interrupt_after_first_batch(work: Path) -> list[dict]:
    """Run ``TARGET``, press Ctrl-C (SIGINT to the process group) once a batch is in the resume file.

    Snakemake starts with SIGINT's default action, as from a terminal: a test run started in the background
    by a non-interactive shell inherits SIGINT ignored, and then neither snakemake nor the job would stop."""
    partial = work / f"{TARGET}.partial.jsonl"
    process = subprocess.Popen(_command(work, "--cores", "1", TARGET), cwd=work, env=_environment(work),
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 900
    try:
        while not (partial.is_file() and len(partial.read_text().splitlines()) >= 2):
            assert process.poll() is None, f"snakemake ended (rc {process.returncode}) before generating"
            assert time.monotonic() < deadline, "no generated batch within 900 s"
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert not (work / TARGET).exists(), "generation finished before the interrupt; the test needs more items"
    return [json.loads(line) for line in partial.read_text().splitlines()[1:]]


def test_interrupted_generation_then_retraining_keeps_no_output_of_the_old_model(smoke_run, tmp_path_factory):
    """Ctrl-C after the first batch of a generation (8 items, one per batch), then train.learning_rate edited
    and the job rerun: every output is the retrained model's (on main 1 of 8 stayed the old model's, and
    the next run said nothing to do). Then an interrupted rerun of generation alone leaves no stale sidecar.
    The finished stages of ``smoke_run`` (data, elicitation, epsilon, the sft model) are copied, with the
    workflow's metadata, so only training and generation run here."""
    work = _workdir(tmp_path_factory, "smoke_interrupted")
    for kept in (".cache", ".snakemake/metadata", "resources/cache", "results/smoke/data",
                 "results/smoke/elicit", "results/smoke/epsilon", SFT_MODEL):
        shutil.copytree(smoke_run / kept, work / kept)

    def small(raw):
        raw["evaluate"].update(batch_size=1)
        raw["evaluate"]["sizes"]["alpacaeval"] = 8
        raw["evaluate"]["max_new_tokens"]["alpacaeval"] = 24

    _edit_experiment(work, small)
    assert _interrupt_after_first_batch(work)
    old_weights = (work / SFT_MODEL / "model.safetensors").read_bytes()

    _edit_experiment(work, lambda raw: raw["train"].update(learning_rate=0.02))
    result = snakemake(work, "--cores", "1", TARGET)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (work / SFT_MODEL / "model.safetensors").read_bytes() != old_weights  # retrained
    log = (work / "logs/generate_outputs/smoke/seed0/mixed/sft/alpacaeval.log").read_text()
    assert "discarding" in log and "model_fingerprint" in log
    meta = json.loads((work / f"{TARGET}.meta.json").read_text())
    assert meta["n_items"] == 8 and meta["n_generated_this_run"] == 8
    assert not (work / f"{TARGET}.partial.jsonl").exists()
    # Every output is the new model's: the same as a generation from it afresh, outside the workflow.
    fresh = work / "fresh.json"
    subprocess.run(
        [sys.executable, "-m", "ual.generate", "--experiment", "experiments/smoke.yaml", "--model", SFT_MODEL,
         "--task", "alpacaeval", "--out", str(fresh)],
        cwd=work, env=_environment(work), check=True, capture_output=True, timeout=600,
    )
    outputs = json.loads((work / TARGET).read_text())
    assert [o["output"] for o in outputs] == [o["output"] for o in json.loads(fresh.read_text())]

    # A rerun of generation alone (an evaluate edit), interrupted, leaves no sidecar of the run before.
    _edit_experiment(work, lambda raw: raw["evaluate"]["max_new_tokens"].update(alpacaeval=20))
    _interrupt_after_first_batch(work)
    assert not (work / f"{TARGET}.meta.json").exists()
