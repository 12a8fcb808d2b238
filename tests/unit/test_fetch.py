"""ual.data.fetch against a local raw-file server: byte-identical mirror, no re-download, refusal, resume,
offline.

The server (``raw_file_server`` in tests/conftest.py) serves the shared mirror's files under their upstream
``<owner>/<repo>/<commit>/<path>`` layout on 127.0.0.1, as raw.githubusercontent.com does.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from ual.data import MANIFEST, load_records
from ual.data.__main__ import main as data_main
from ual.fetch import main as fetch_main
from ual.data.fetch import LOCK_NAME, FetchError, fetch_files

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "experiments" / "tiny.yaml"
TINY_FILES = ("instruct/alpaca_en_demo.json", "gsm8k/train.jsonl", "gsm8k/test.jsonl", "math/math500.jsonl",
              "alpaca_eval/results/text_davinci_003/model_outputs.json",
              "alpaca_eval/results/gpt4_1106_preview/model_outputs.json")  # what experiments/tiny.yaml reads
GSM8K_TRAIN = MANIFEST["gsm8k/train.jsonl"]
SMALL = [MANIFEST["math/math500.jsonl"], MANIFEST["alpaca_eval/results/text_davinci_003/model_outputs.json"]]


def _url_path(entry) -> str:
    return f"/{entry.repository}/{entry.commit}/{entry.path}"


def _leftovers(folder: Path) -> list[str]:
    """The files under ``folder`` apart from fetch's lock file."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != LOCK_NAME)


@pytest.fixture
def offline_url() -> str:
    """A 127.0.0.1 URL where nothing listens (connection refused, as on a machine without network)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def no_mirror(tmp_path, monkeypatch) -> Path:
    """No UAL_DATA_MIRROR, and the default data cache under tmp_path (the user's cache folder)."""
    monkeypatch.delenv("UAL_DATA_MIRROR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "ual" / "data"


def test_fetch_builds_a_byte_identical_mirror_and_a_second_fetch_downloads_nothing(
    tmp_path, raw_file_server, data_mirror
):
    dest = tmp_path / "mirror"
    result = fetch_files(MANIFEST.values(), dest, base_url=raw_file_server.url, progress=False)
    assert sorted(result.downloaded) == sorted(MANIFEST) and result.verified == []
    assert _leftovers(dest) == sorted(MANIFEST)  # no .part file left behind
    for name in MANIFEST:
        assert (dest / name).read_bytes() == (data_mirror / name).read_bytes(), name
    assert sorted(path for path, _ in raw_file_server.requests) == sorted(map(_url_path, MANIFEST.values()))

    raw_file_server.requests.clear()
    again = fetch_files(MANIFEST.values(), dest, base_url=raw_file_server.url, progress=False)
    assert again.downloaded == [] and sorted(again.verified) == sorted(MANIFEST)
    assert raw_file_server.requests == []


def test_a_changed_byte_is_refused_naming_the_file_and_nothing_is_left(tmp_path, raw_file_server):
    raw_file_server.corrupt.add(_url_path(SMALL[0]))
    dest = tmp_path / "mirror"
    with pytest.raises(FetchError) as info:
        fetch_files(SMALL, dest, base_url=raw_file_server.url, progress=False)
    message = str(info.value)
    url = SMALL[0].url(raw_file_server.url)
    assert message.startswith(f"{SMALL[0].name}: refused the file downloaded from {url}: {SMALL[0].size} ")
    assert f"manifest pins {SMALL[0].size} bytes with sha256 {SMALL[0].sha256}; removed it" in message
    assert _leftovers(dest) == [SMALL[1].name]  # the good file is kept, nothing of the bad one


def test_a_file_already_in_the_mirror_that_differs_is_refused_and_kept(tmp_path, raw_file_server):
    dest, entry = tmp_path / "mirror", SMALL[0]
    (dest / entry.name).parent.mkdir(parents=True)
    (dest / entry.name).write_text('{"problem": "edited"}\n')
    with pytest.raises(FetchError) as info:
        fetch_files(SMALL, dest, base_url=raw_file_server.url, progress=False)
    assert str(info.value).startswith(
        f"{entry.name}: {dest / entry.name} is not the manifest's file (22 bytes with sha256 "
    )
    assert f"pinned: {entry.size} bytes with sha256 {entry.sha256}, {entry.upstream}); refused" in str(info.value)
    assert (dest / entry.name).read_text() == '{"problem": "edited"}\n'  # someone's file is never overwritten
    assert [path for path, _ in raw_file_server.requests] == [_url_path(SMALL[1])]  # the other file still comes


def test_an_interrupted_download_is_completed_on_rerun(tmp_path, raw_file_server, data_mirror):
    dest, cut = tmp_path / "mirror", 1_000_000
    raw_file_server.cut[_url_path(GSM8K_TRAIN)] = cut
    with pytest.raises(FetchError) as info:
        fetch_files([GSM8K_TRAIN], dest, base_url=raw_file_server.url, attempts=1, progress=False)
    part = dest / "gsm8k" / "train.jsonl.part"
    kept = f"the connection closed after {cut} of {GSM8K_TRAIN.size} bytes; {cut} bytes kept in {part}"
    assert kept in str(info.value)
    assert part.stat().st_size == cut and not (dest / GSM8K_TRAIN.name).exists()

    result = fetch_files([GSM8K_TRAIN], dest, base_url=raw_file_server.url, progress=False)
    assert result.downloaded == [GSM8K_TRAIN.name]
    assert raw_file_server.requests[-1] == (_url_path(GSM8K_TRAIN), f"bytes={cut}-")  # resumed, not restarted
    assert (dest / GSM8K_TRAIN.name).read_bytes() == (data_mirror / GSM8K_TRAIN.name).read_bytes()
    assert not part.exists()


def test_a_broken_transfer_is_resumed_within_the_same_run(tmp_path, raw_file_server, data_mirror):
    raw_file_server.cut[_url_path(SMALL[0])] = 1000
    result = fetch_files(SMALL[:1], tmp_path, base_url=raw_file_server.url, progress=False)
    assert result.downloaded == [SMALL[0].name]
    assert [r for _, r in raw_file_server.requests] == [None, "bytes=1000-"]
    assert (tmp_path / SMALL[0].name).read_bytes() == (data_mirror / SMALL[0].name).read_bytes()


def test_no_server_and_no_mirror_gives_the_air_gapped_message(no_mirror, offline_url, capsys):
    with pytest.raises(SystemExit) as info:
        fetch_main(["--experiment", str(TINY), "--base-url", offline_url])
    message = str(info.value)
    assert message.startswith(f"error: 6 data file(s) could not be downloaded into {no_mirror}:")
    for name in TINY_FILES:
        entry = MANIFEST[name]
        assert f"  {no_mirror / name}  ({entry.size} bytes, sha256 {entry.sha256})" in message
        assert f"      from {entry.url(offline_url)}  [URLError: [Errno 111] Connection refused]" in message
    assert "Without internet (the air-gapped route)" in message and "set UAL_DATA_MIRROR=<folder>" in message
    assert _leftovers(no_mirror) == []  # nothing written but the lock file
    with pytest.raises(Exception, match=rf"{no_mirror / 'gsm8k/test.jsonl'} is absent from the data cache "
                                        r".*https://raw\.githubusercontent\.com/openai/grade-school-math/"):
        load_records("gsm8k", "test")


def test_the_loader_reads_the_default_cache_that_fetch_fills(no_mirror, raw_file_server, data_mirror,
                                                             tmp_path):
    record = tmp_path / "math.json"
    fetch_main(["--experiment", str(TINY), "--group", "math", "--base-url", raw_file_server.url,
               "--record", str(record), "--no-progress"])
    assert _leftovers(no_mirror) == ["math/math500.jsonl"]  # only the group's file
    assert load_records("math", "math500") == load_records("math", "math500", data_mirror)
    written = json.loads(record.read_text())
    assert (written["experiment"], written["group"], written["mirror"]) == ("tiny", "math", str(no_mirror.resolve()))
    [source] = written["sources"]
    assert source["file"] == "math/math500.jsonl" and source["sha256"] == MANIFEST["math/math500.jsonl"].sha256
    assert source["used_for"] == ["evaluate.math"] and source["matches_manifest"]

    fetch_main(["--experiment", str(TINY), "--base-url", raw_file_server.url, "--no-progress"])
    assert _leftovers(no_mirror) == sorted(TINY_FILES)


def test_the_inspection_command_still_works_without_a_subcommand(data_mirror, capsys):
    data_main(["--dataset", "gsm8k", "--split", "test", "--size", "1", "--mirror", str(data_mirror)])
    [record] = json.loads(capsys.readouterr().out)
    assert record["dataset"] == "gsm8k" and record["answer"]
