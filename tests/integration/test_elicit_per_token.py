"""Per-token entropy (``python -m ual.elicit --input ... --source entropy --per-token``) on the 2-layer cut of
the packaged SmolLM2, into TRL 1.16.0 through ``UALSFTTrainer``.

Each response token's value is its predictive entropy computed by hand from the model's logits; with another
target tokenizer (a word-level one) each word gets the mean over the SmolLM2 tokens its characters overlap;
the CLI writes one uncertainty/epsilon per completion token, a rerun comes from the cache, and
``UALSFTTrainer`` trains on the file: its loss equals per-sample forwards with those per-token epsilons (TRL's
EOS / end-of-turn token taking the sample's mean), for plain and conversational prompt-completion rows.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from ual.elicit.cli import main
from ual.elicit.entropy import EntropyElicitor, align_to_tokens

pytestmark = pytest.mark.slow
ROWS = [
    {"prompt": "What is 2 + 3?", "completion": " 2 + 3 = 5, so the answer is 5."},
    {"prompt": "Name a colour of the sky.", "completion": " The sky is blue on a clear day."},
    {"prompt": "Say hello.", "completion": " Hello there, friend."},
]


@pytest.fixture(scope="module")
def cut_folder(tiny_smollm2, tmp_path_factory):
    model, tokenizer = tiny_smollm2
    folder = tmp_path_factory.mktemp("smollm2-2layers")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@torch.inference_mode()
def entropies_by_hand(model, tokenizer, elicitor, row: dict) -> tuple[list[float], list[tuple[int, int]]]:
    """H_t of every response token (float64), and the tokens' character spans."""
    prefix, response = elicitor.build_input(
        {"instruction": row["prompt"], "input": "", "output": row["completion"]}, "v1"
    )
    head = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    tail = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
    logits = model(input_ids=torch.tensor([head + tail["input_ids"]])).logits[0].double()
    p = logits.softmax(-1)[len(head) - 1 : -1]
    return (-(p * p.log()).sum(-1)).tolist(), tail["offset_mapping"]


def test_per_token_entropies_are_each_response_tokens_entropy(tiny_smollm2):
    model, tokenizer = tiny_smollm2
    elicitor = EntropyElicitor(model, tokenizer, 3, "hf:x", "entropy/per-token/self", target=tokenizer)
    inputs = [elicitor.build_input({"instruction": r["prompt"], "input": "", "output": r["completion"]}, "v1")
              for r in ROWS]
    replies = elicitor.score(inputs)
    for row, reply in zip(ROWS, replies, strict=True):
        expected, _ = entropies_by_hand(model, tokenizer, elicitor, row)
        assert reply.token_scores == pytest.approx(expected, rel=1e-4, abs=1e-5)
        assert reply.score == pytest.approx(sum(expected) / len(expected), rel=1e-4)


def test_align_to_tokens_rules():
    spans, values = [(0, 2), (2, 5), (5, 9)], [1.0, 2.0, 6.0]
    assert align_to_tokens(spans, values, spans) == values  # the same tokenizer: the values themselves
    assert align_to_tokens(spans, values, [(0, 5), (4, 9)]) == [1.5, 4.0]  # the mean over overlaps
    assert align_to_tokens(spans, values, [(9, 9), (3, 3)]) == [6.0, 2.0]  # empty span: nearest / covering


def word_tokenizer(folder):
    """A word-level fast tokenizer (whitespace split) over the words of ``ROWS``, saved to ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for r in ROWS for w in (r["prompt"] + r["completion"]).split()})
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["<unk>", "</s>", *words])}, "<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="</s>")
    tokenizer.save_pretrained(folder)
    return tokenizer


def run_cli(tmp_path, folder, rows, *extra) -> list[dict]:
    data, out = tmp_path / "data.jsonl", tmp_path / "scored.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    main(["--input", str(data), "--out", str(out), "--backend", "hf", "--model", str(folder), "--source",
          "entropy", "--per-token", "--cache-dir", str(tmp_path / "cache"), "--no-progress", *extra])
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_a_word_level_target_gets_the_mean_over_overlapping_tokens(tiny_smollm2, cut_folder, tmp_path):
    model, tokenizer = tiny_smollm2
    words = word_tokenizer(tmp_path / "words")
    scored = run_cli(tmp_path, cut_folder, ROWS, "--target-tokenizer", str(tmp_path / "words"))
    elicitor = EntropyElicitor(model, tokenizer, 1, "hf:x")
    by_word = []
    for row in ROWS:
        entropy, spans = entropies_by_hand(model, tokenizer, elicitor, row)
        completion = row["completion"]
        for start, end in words(completion, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ]:
            by_word.append(sum(h for (a, b), h in zip(spans, entropy) if a < end and start < b)
                           / sum(1 for a, b in spans if a < end and start < b))
    low, high = min(by_word), max(by_word)
    got = [u for row in scored for u in row["uncertainty"]]
    assert [len(r["uncertainty"]) for r in scored] == [len(r["completion"].split()) for r in ROWS]
    assert got == pytest.approx([(h - low) / (high - low) for h in by_word], abs=1e-4)


@pytest.mark.parametrize("conversational", [False, True], ids=["plain", "conversational"])
def test_the_scored_file_trains_with_ualsfttrainer(tiny_smollm2, cut_folder, tmp_path, conversational):
    from datasets import Dataset
    from trl import SFTConfig

    from ual.losses import label_smoothed_nll_reference
    from ual.trl import UALSFTTrainer

    model, tokenizer = tiny_smollm2
    rows = ROWS
    if conversational:
        rows = [{"prompt": [{"role": "user", "content": r["prompt"]}],
                 "completion": [{"role": "assistant", "content": r["completion"].strip()}]} for r in ROWS]
    scored = run_cli(tmp_path, cut_folder, rows, "--eps-max", "0.4")
    text_tokens = [len(tokenizer(r["completion"] if isinstance(r["completion"], str) else
                                 r["completion"][0]["content"], add_special_tokens=False)["input_ids"])
                   for r in rows]
    assert [len(r["epsilon"]) for r in scored] == text_tokens
    assert all(0.0 <= e <= 0.4 for r in scored for e in r["epsilon"])
    again = run_cli(tmp_path, cut_folder, rows, "--eps-max", "0.4")  # from the cache: identical
    assert again == scored

    args = SFTConfig(output_dir=str(tmp_path / "out"), report_to="none", per_device_train_batch_size=3,
                     max_steps=1, use_cpu=True, shuffle_dataset=False, bf16=False)
    trainer = UALSFTTrainer(model=copy.deepcopy(model), args=args, train_dataset=Dataset.from_list(scored),
                            processing_class=tokenizer)
    total, count = 0.0, 0
    with torch.no_grad():
        for i, row in enumerate(scored):
            sample = trainer.train_dataset[i]
            labels = torch.tensor([sample["labels"]])
            completion = [t for t, label in zip(sample["token_epsilon"], sample["labels"]) if label != -100]
            mean = sum(row["epsilon"]) / len(row["epsilon"])
            assert completion[: len(row["epsilon"])] == pytest.approx(row["epsilon"])
            tail = completion[len(row["epsilon"]) :]
            assert tail == pytest.approx([mean] * (len(completion) - text_tokens[i]))
            assert len(completion) > text_tokens[i]  # TRL's EOS / end of turn
            eps = torch.tensor([sample["token_epsilon"]])  # aligned with labels (the reference shifts both)
            logits = trainer.model(input_ids=torch.tensor([sample["input_ids"]])).logits
            total += label_smoothed_nll_reference(logits, labels, eps, num_items=1)
            count += int((labels[:, 1:] != -100).sum())
        batch = trainer.data_collator([dict(trainer.train_dataset[i]) for i in range(len(scored))])
        loss = trainer.compute_loss(trainer.model, batch)
    torch.testing.assert_close(loss, total / count, rtol=1e-5, atol=1e-5)


def test_per_token_needs_input_mode_and_the_entropy_source(cut_folder, tmp_path):
    with pytest.raises(SystemExit, match="2"):
        main(["--experiment", "x.yaml", "--out", str(tmp_path / "o"), "--per-token"])
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(ROWS[0]) + "\n")
    base = ["--input", str(data), "--out", str(tmp_path / "o.jsonl"), "--backend", "hf", "--model",
            str(cut_folder)]
    with pytest.raises(SystemExit, match="per_token needs method 'entropy'"):
        main([*base, "--per-token"])
    with pytest.raises(SystemExit, match="per_token needs on_missing 'fail'"):
        main([*base, "--per-token", "--source", "entropy", "--on-missing", "median"])
