"""ual.provenance.read_json_list: the one reader of JSON-list files (model outputs, reference outputs)."""

from __future__ import annotations

import pytest

from ual.evaluate import OutputsError, read_model_outputs
from ual.provenance import read_json_list


class _Refused(ValueError):
    pass


def test_read_json_list_returns_the_list_and_raises_the_callers_error_naming_the_file(tmp_path):
    good, bad, other = tmp_path / "good.json", tmp_path / "bad.json", tmp_path / "other.json"
    good.write_text('[{"a": 1}, 2]')
    bad.write_text("[{")
    other.write_text('{"a": 1}')
    assert read_json_list(good, "rows") == [{"a": 1}, 2]
    with pytest.raises(_Refused, match=rf"{bad}: cannot read rows \("):
        read_json_list(bad, "rows", _Refused)
    with pytest.raises(ValueError, match=rf"{other}: expected a JSON list of rows, got dict"):
        read_json_list(other, "rows")
    with pytest.raises(_Refused, match=rf"{tmp_path / 'missing.json'}: cannot read rows"):
        read_json_list(tmp_path / "missing.json", "rows", _Refused)


def test_model_outputs_errors_stay_outputs_errors(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text('"not a list"')
    with pytest.raises(OutputsError, match="expected a JSON list of model outputs, got str"):
        read_model_outputs(path, "id")
