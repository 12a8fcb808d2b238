"""``UALSFTTrainer`` against the real TRL 1.16.0 on the 2-layer cut of the packaged SmolLM2.

Its loss equals TRL's own paths (a constant epsilon: ``label_smoothing_factor``; epsilon 0: plain NLL); the
epsilon column survives TRL's tokenisation and collators (a batch where one sample alone has epsilon > 0,
padded and padding-free, against per-sample forwards); one optimiser step's update does not depend on how
the batch is split for gradient accumulation; LoRA (peft, where installed) trains its adapters with the head
frozen; bad epsilon columns fail before training, naming column and row.
"""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("trl")
from datasets import Dataset  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from ual.losses import label_smoothed_nll_reference  # noqa: E402
from ual.trl import EpsilonColumnError, UALSFTTrainer  # noqa: E402

pytestmark = pytest.mark.slow


def rows(n: int = 4, **columns) -> list[dict]:
    samples = [
        {
            "prompt": f"Question {i}: what is {i} + {i}?",
            "completion": f" The answer is {2 * i}." * (1 + i % 3),
        }
        for i in range(n)
    ]
    return [{**s, **{k: v[i] for k, v in columns.items()}} for i, s in enumerate(samples)]


def config(tmp_path, **kwargs) -> SFTConfig:
    settings = dict(
        output_dir=str(tmp_path),
        report_to="none",
        per_device_train_batch_size=4,
        max_steps=1,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        shuffle_dataset=False,
    )
    return SFTConfig(**{**settings, **kwargs})


@pytest.fixture(scope="module")
def cut(tiny_smollm2):
    return tiny_smollm2


def trainer(cls, cut, tmp_path, data: list[dict], **kwargs):
    model, tokenizer = cut
    trainer_kwargs = {k: kwargs.pop(k) for k in ("eps_min", "eps_max") if k in kwargs}
    return cls(
        model=copy.deepcopy(model),
        args=config(tmp_path, **kwargs),
        train_dataset=Dataset.from_list(data),
        processing_class=tokenizer,
        **trainer_kwargs,
    )


def first_batch(trainer) -> dict:
    return trainer.data_collator([dict(trainer.train_dataset[i]) for i in range(len(trainer.train_dataset))])


@pytest.mark.parametrize(("epsilon", "trl_settings"), [(0.1, {"label_smoothing_factor": 0.1}), (0.0, {})])
def test_loss_equals_trls_own_path(cut, tmp_path, epsilon, trl_settings):
    ual = trainer(UALSFTTrainer, cut, tmp_path / "ual", rows(epsilon=[epsilon] * 4))
    trl = trainer(SFTTrainer, cut, tmp_path / "trl", rows(), **trl_settings)
    ual_batch, trl_batch = first_batch(ual), first_batch(trl)
    assert torch.equal(ual_batch["labels"], trl_batch["labels"])
    for num_items in (None, 50):
        ours = ual.compute_loss(ual.model, dict(ual_batch), num_items_in_batch=num_items)
        theirs = trl.compute_loss(trl.model, dict(trl_batch), num_items_in_batch=num_items)
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def per_sample_loss(model, tokenised: list[dict], epsilon: list) -> torch.Tensor:
    """sum over samples of each sample's smoothed CE sum (its own forward) / all response tokens."""
    total, count = 0.0, 0
    with torch.no_grad():
        for row, eps in zip(tokenised, epsilon, strict=True):
            ids, labels = torch.tensor([row["input_ids"]]), torch.tensor([row["labels"]])
            eps = torch.tensor([eps]) if not isinstance(eps, torch.Tensor) else eps[None]
            total += label_smoothed_nll_reference(model(input_ids=ids).logits, labels, eps, num_items=1)
            count += int((labels[:, 1:] != -100).sum())
    return total / count


@pytest.mark.parametrize(
    "layout",
    [{}, {"padding_free": True, "max_length": None}, {"packing": True, "max_length": 512}],
    ids=["padded", "padding_free", "packed"],
)
def test_epsilon_of_one_sample_survives_the_collator(cut, tmp_path, layout):
    epsilon = [0.0, 0.0, 0.6, 0.0]
    ual = trainer(UALSFTTrainer, cut, tmp_path / "ual", rows(epsilon=epsilon), **layout)
    batch = first_batch(ual)
    assert batch["input_ids"].shape[0] == (4 if not layout else 1)
    with torch.no_grad():
        loss = ual.compute_loss(ual.model, dict(batch))
    samples = trainer(UALSFTTrainer, cut, tmp_path / "samples", rows(epsilon=epsilon)).train_dataset
    model = ual.model.eval()
    expected = per_sample_loss(model, [samples[i] for i in range(4)], epsilon)
    assert not torch.isclose(expected, per_sample_loss(model, [samples[i] for i in range(4)], [0.0] * 4))
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)


def test_per_token_epsilon_and_uncertainty_columns(cut, tmp_path):
    base = trainer(UALSFTTrainer, cut, tmp_path / "base", rows(epsilon=[0.0, 0.0, 0.3, 0.0]))
    lengths = [sum(label != -100 for label in base.train_dataset[i]["labels"]) for i in range(4)]
    per_token = [[0.3] * n if i == 2 else [0.0] * n for i, n in enumerate(lengths)]
    token = trainer(UALSFTTrainer, cut, tmp_path / "token", rows(epsilon=per_token))
    mapped = trainer(
        UALSFTTrainer, cut, tmp_path / "mapped", rows(uncertainty=[0.0, 0.0, 0.5, 0.0]), eps_max=0.6
    )
    losses = [t.compute_loss(t.model, first_batch(t)).item() for t in (base, token, mapped)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-6) and losses[0] == pytest.approx(losses[2], abs=1e-6)


def test_evaluation_without_epsilon_is_trls_plain_nll(cut, tmp_path):
    model, tokenizer = cut
    evaluation = Dataset.from_list(rows(3))
    losses = []
    for cls, data in ((UALSFTTrainer, rows(epsilon=[0.1] * 4)), (SFTTrainer, rows())):
        run = cls(
            model=copy.deepcopy(model),
            args=config(tmp_path / cls.__name__, per_device_eval_batch_size=2),
            train_dataset=Dataset.from_list(data),
            eval_dataset=evaluation,
            processing_class=tokenizer,
        )
        losses.append(run.evaluate()["eval_loss"])
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def one_step_update(cut, tmp_path, batch: int, accumulation: int, **settings) -> torch.Tensor:
    ual = trainer(
        UALSFTTrainer,
        cut,
        tmp_path,
        rows(epsilon=[0.0, 0.1, 0.5, 0.2]),
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        optim="sgd",
        learning_rate=1.0,
        max_grad_norm=0.0,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        **settings,
    )
    weights = (ual.model.lm_head.weight, ual.model.model.layers[0].self_attn.q_proj.weight)
    before = torch.cat([w.detach().flatten() for w in weights])
    ual.train()
    return torch.cat([w.detach().flatten() for w in weights]) - before


def test_update_does_not_depend_on_gradient_accumulation(cut, tmp_path):
    whole = one_step_update(cut, tmp_path / "4x1", 4, 1)
    split = one_step_update(cut, tmp_path / "1x4", 1, 4)
    assert whole.abs().max() > 0
    torch.testing.assert_close(split, whole, rtol=1e-4, atol=1e-6)


def test_update_does_not_depend_on_gradient_checkpointing(cut, tmp_path):
    """TRL's SFTConfig default recomputes the layers in backward; the lean loss's update is the same."""
    stored = one_step_update(cut, tmp_path / "stored", 4, 1)
    recomputed = one_step_update(cut, tmp_path / "recomputed", 4, 1, gradient_checkpointing=True)
    assert stored.abs().max() > 0
    torch.testing.assert_close(recomputed, stored, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({}, "no 'epsilon' column"),
        ({"epsilon": [0.1, float("nan"), 0.1, 0.1]}, "column 'epsilon', row 1: nan is not finite"),
        ({"epsilon": [0.1, 0.1, -0.2, 0.1]}, "column 'epsilon', row 2: -0.2 is outside [0, 1)"),
        ({"epsilon": [0.1, 0.1, 0.1, 1.0]}, "column 'epsilon', row 3: 1.0 is outside [0, 1)"),
        ({"uncertainty": [0.1, 1.5, 0.1, 0.1]}, "column 'uncertainty', row 1: 1.5 is outside [0, 1]"),
        (
            {"epsilon": [[0.1], [0.1], [0.1], [0.1]]},
            "column 'epsilon', row 0: 1 per-token values but the sample has",
        ),
    ],
)
def test_bad_epsilon_column_fails_before_training(cut, tmp_path, columns, message):
    with pytest.raises(
        EpsilonColumnError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        trainer(UALSFTTrainer, cut, tmp_path, rows(**columns))


def test_lora_trains_the_adapters_with_the_head_frozen(cut, tmp_path):
    peft = pytest.importorskip("peft")
    lora_config = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
    )
    data = Dataset.from_list(rows(epsilon=[0.0, 0.1, 0.5, 0.2]))
    lora = UALSFTTrainer(
        model=copy.deepcopy(cut[0]),
        args=config(tmp_path, learning_rate=1e-2),
        train_dataset=data,
        processing_class=cut[1],
        peft_config=lora_config,
    )
    adapters = {n: p.detach().clone() for n, p in lora.model.named_parameters() if "lora_B" in n}
    head = lora.model.get_output_embeddings().weight.detach().clone()
    lora.train()
    after = dict(lora.model.named_parameters())
    assert adapters and all(not torch.equal(after[n].detach(), before) for n, before in adapters.items())
    assert torch.equal(lora.model.get_output_embeddings().weight, head)


def test_a_model_that_scales_its_logits_is_refused(cut, tmp_path):
    model = copy.deepcopy(cut[0])
    model.config.final_logit_softcapping = 30.0
    with pytest.raises(
        ValueError, match="UALSFTTrainer computes the lean UAL loss only: .*final_logit_softcapping"
    ):
        UALSFTTrainer(
            model=model,
            args=config(tmp_path),
            train_dataset=Dataset.from_list(rows(epsilon=[0.1] * 4)),
            processing_class=cut[1],
        )
