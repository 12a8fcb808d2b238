"""The UAL loss against PyTorch and transformers, its two paths against each other, and its edge cases.

Run: python -m pytest tests/unit/test_losses.py
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode
from transformers.trainer_pt_utils import LabelSmoother

from ual.losses import (
    IGNORE_INDEX,
    count_response_tokens,
    label_smoothed_nll_lean,
    label_smoothed_nll_linear_ce,
    label_smoothed_nll_reference,
)

@pytest.fixture(autouse=True)
def _float32_default():
    yield
    torch.set_default_dtype(torch.float32)  # the finite-difference test switches to float64


def make_batch(batch: int, seq: int, vocab: int, seed: int, prompt_len: int = 2, pad: int = 1):
    """Random logits and labels with masked prompt tokens and right padding on every other row."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, seq, vocab, generator=gen) * 3
    labels = torch.randint(0, vocab, (batch, seq), generator=gen)
    labels[:, : min(prompt_len, seq)] = IGNORE_INDEX
    labels[::2, seq - min(pad, seq) :] = IGNORE_INDEX
    return logits, labels


def torch_label_smoothing(logits, labels, eps):
    """PyTorch's own label-smoothed CE over the shifted, non-ignored tokens (token mean)."""
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
        label_smoothing=eps,
    )


# --- analytic values ---------------------------------------------------------------------------------


def test_uniform_logits_give_log_vocab_for_any_epsilon():
    vocab = 7
    logits = torch.zeros(2, 5, vocab)
    labels = torch.randint(0, vocab, (2, 5))
    for eps in (0.0, 0.1, 0.5, 0.9):
        loss = label_smoothed_nll_reference(logits, labels, torch.full((2,), eps))
        assert loss.item() == pytest.approx(math.log(vocab), rel=1e-6)


def test_two_class_hand_derived_value():
    # z = (2, 0), target 0: p0 = e^2/(e^2+1). CE_eps = (1-eps)(-log p0) + eps/2 (-log p0 - log p1).
    logits = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])  # logits at t=0 predict the label at t=1
    labels = torch.tensor([[IGNORE_INDEX, 0]])
    eps = 0.3
    p0 = math.exp(2) / (math.exp(2) + 1)
    expected = (1 - eps) * -math.log(p0) + eps / 2 * (-math.log(p0) - math.log(1 - p0))
    loss = label_smoothed_nll_reference(logits, labels, torch.tensor([eps]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


# --- equivalence with PyTorch and transformers ---------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 4),
    seq=st.integers(4, 12),
    vocab=st.integers(2, 300),
    eps=st.floats(0.0, 0.95),
    seed=st.integers(0, 10_000),
)
def test_constant_epsilon_matches_torch_and_labelsmoother(batch, seq, vocab, eps, seed):
    logits, labels = make_batch(batch, seq, vocab, seed)
    if count_response_tokens(labels) == 0:
        return
    ours = label_smoothed_nll_reference(logits, labels, torch.full((batch,), eps))
    expected_torch = torch_label_smoothing(logits, labels, eps)
    expected_hf = LabelSmoother(epsilon=eps)({"logits": logits}, labels, shift_labels=True)
    torch.testing.assert_close(ours, expected_torch, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours, expected_hf, rtol=1e-5, atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 4), seq=st.integers(3, 10), vocab=st.integers(2, 200), seed=st.integers(0, 10_000))
def test_zero_epsilon_is_plain_cross_entropy(batch, seq, vocab, seed):
    logits, labels = make_batch(batch, seq, vocab, seed)
    if count_response_tokens(labels) == 0:
        return
    ours = label_smoothed_nll_reference(logits, labels, torch.zeros(batch))
    expected = F.cross_entropy(
        logits[:, :-1].reshape(-1, vocab), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
    )
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)


def test_per_sample_epsilon_is_token_weighted_mix_of_constant_losses():
    logits, labels = make_batch(2, 9, 50, seed=3)
    eps = torch.tensor([0.05, 0.4])
    ours = label_smoothed_nll_reference(logits, labels, eps)
    sums = []
    for row in range(2):
        n = count_response_tokens(labels[row : row + 1])
        sums.append(torch_label_smoothing(logits[row : row + 1], labels[row : row + 1], eps[row].item()) * n)
    expected = (sums[0] + sums[1]) / count_response_tokens(labels)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)


def test_ignored_positions_do_not_contribute():
    logits, labels = make_batch(3, 8, 40, seed=5)
    before = label_smoothed_nll_reference(logits, labels, torch.full((3,), 0.2))
    poked = logits.clone()
    ignored_next = torch.zeros_like(labels, dtype=torch.bool)
    ignored_next[:, :-1] = labels[:, 1:] == IGNORE_INDEX  # logits whose target is ignored
    poked[ignored_next] = 1e4
    after = label_smoothed_nll_reference(poked, labels, torch.full((3,), 0.2))
    torch.testing.assert_close(before, after)


def test_shift_pairs_logits_at_t_with_label_at_t_plus_1():
    vocab = 5
    logits = torch.full((1, 3, vocab), -20.0)
    labels = torch.tensor([[IGNORE_INDEX, 2, 4]])
    logits[0, 0, 2] = 20.0  # position 0 predicts label[1] = 2
    logits[0, 1, 4] = 20.0  # position 1 predicts label[2] = 4
    assert label_smoothed_nll_reference(logits, labels, torch.zeros(1)).item() < 1e-10


def test_per_token_epsilon_equals_per_sample_when_constant_along_rows():
    logits, labels = make_batch(3, 10, 64, seed=8)
    eps = torch.tensor([0.1, 0.0, 0.3])
    per_sample = label_smoothed_nll_reference(logits, labels, eps)
    per_token = label_smoothed_nll_reference(logits, labels, eps[:, None].expand(3, 10).clone())
    torch.testing.assert_close(per_sample, per_token)


# --- the memory-lean path ---------------------------------------------------------------------------------


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("chunk_tokens", [1, 3, 1000])
def test_lean_path_matches_reference_in_value_and_gradient(with_bias, chunk_tokens):
    gen = torch.Generator().manual_seed(11)
    batch, seq, hidden_size, vocab = 3, 9, 16, 101
    hidden = torch.randn(batch, seq, hidden_size, generator=gen, requires_grad=True)
    weight = torch.randn(vocab, hidden_size, generator=gen, requires_grad=True)
    bias = torch.randn(vocab, generator=gen, requires_grad=True) if with_bias else None
    _, labels = make_batch(batch, seq, vocab, seed=12)
    eps = torch.tensor([0.0, 0.15, 0.6])

    logits = hidden @ weight.T + (bias if bias is not None else 0)
    ref = label_smoothed_nll_reference(logits, labels, eps, num_items=37)
    ref_grads = torch.autograd.grad(ref, [hidden, weight] + ([bias] if with_bias else []))

    lean = label_smoothed_nll_lean(hidden, weight, labels, eps, bias=bias, num_items=37, chunk_tokens=chunk_tokens)
    lean_grads = torch.autograd.grad(lean, [hidden, weight] + ([bias] if with_bias else []))

    torch.testing.assert_close(lean, ref, rtol=1e-5, atol=1e-6)
    for got, want in zip(lean_grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_lean_path_scales_gradient_by_upstream_gradient():
    gen = torch.Generator().manual_seed(2)
    hidden = torch.randn(2, 6, 8, generator=gen, requires_grad=True)
    weight = torch.randn(30, 8, generator=gen, requires_grad=True)
    _, labels = make_batch(2, 6, 30, seed=2)
    eps = torch.tensor([0.1, 0.2])
    loss = label_smoothed_nll_lean(hidden, weight, labels, eps)
    (g1,) = torch.autograd.grad(loss, hidden, retain_graph=True)
    (g3,) = torch.autograd.grad(3.0 * label_smoothed_nll_lean(hidden, weight, labels, eps), hidden)
    torch.testing.assert_close(g3, 3.0 * g1)
    with pytest.raises(RuntimeError, match="a second backward through the same loss"):
        torch.autograd.grad(loss, hidden)  # its gradients were handed over already


def test_lean_path_hands_its_weight_gradient_over_without_a_copy():
    """With no .grad yet (every step under ZeRO-3), autograd moves the computed gradient into .grad."""
    gen = torch.Generator().manual_seed(5)
    hidden = torch.randn(2, 6, 8, generator=gen)
    weight = torch.randn(30, 8, generator=gen, requires_grad=True)
    _, labels = make_batch(2, 6, 30, seed=5)
    seen = []
    weight.register_hook(lambda grad: seen.append(grad.data_ptr()))
    label_smoothed_nll_lean(hidden, weight, labels, torch.tensor([0.1, 0.2])).backward()
    assert weight.grad.data_ptr() == seen[0]


def test_lean_path_gradient_matches_finite_differences():
    torch.set_default_dtype(torch.float64)
    gen = torch.Generator().manual_seed(4)
    hidden = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[IGNORE_INDEX, 1, 5, 0], [IGNORE_INDEX, IGNORE_INDEX, 2, IGNORE_INDEX]])
    eps = torch.tensor([0.25, 0.5], dtype=torch.float64)

    def lean(h, w, b):
        return label_smoothed_nll_lean(h, w, labels, eps, bias=b, chunk_tokens=2)

    # central differences by hand: torch.autograd.gradcheck runs backward twice on one output, which the lean
    # path refuses (its gradients are handed over once)
    leaves = (hidden, weight, bias)
    analytic = torch.autograd.grad(lean(*leaves), leaves)
    step = 1e-6
    with torch.no_grad():
        for leaf, grad in zip(leaves, analytic, strict=True):
            numeric = torch.zeros_like(leaf)
            for index in range(leaf.numel()):
                flat = leaf.view(-1)
                flat[index] += step
                up = lean(*leaves)
                flat[index] -= 2 * step
                down = lean(*leaves)
                flat[index] += step
                numeric.view(-1)[index] = (up - down) / (2 * step)
            torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-7)


def test_reference_gradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(9)
    logits = torch.randn(2, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[IGNORE_INDEX, 1, 4, 0], [IGNORE_INDEX, 3, 2, IGNORE_INDEX]])
    eps = torch.tensor([0.1, 0.7], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda z: label_smoothed_nll_reference(z, labels, eps), (logits,), eps=1e-6, atol=1e-7
    )


class _OpRecorder(TorchDispatchMode):
    """Names of the aten ops run inside the context (what the loss actually computes)."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def test_lean_path_builds_no_gradient_under_no_grad():
    """Evaluation (torch.no_grad, parameters still requires_grad): one h @ W.T per chunk and nothing else."""
    gen = torch.Generator().manual_seed(3)
    hidden = torch.randn(2, 7, 16, generator=gen)
    weight = torch.randn(50, 16, generator=gen, requires_grad=True)
    _, labels = make_batch(2, 7, 50, seed=3)
    chunks = math.ceil(count_response_tokens(labels) / 4)
    eps = torch.tensor([0.1, 0.2])
    with torch.no_grad(), _OpRecorder() as evaluation:
        value = label_smoothed_nll_lean(hidden, weight, labels, eps, chunk_tokens=4)
    with _OpRecorder() as training:
        trained = label_smoothed_nll_lean(hidden, weight, labels, eps, chunk_tokens=4)
    assert value.grad_fn is None and torch.equal(value, trained.detach())
    assert evaluation.ops.count("aten.mm") == chunks and "aten.addmm_" not in evaluation.ops
    assert "aten.index_add_" not in evaluation.ops  # no one-hot gradient terms either
    assert training.ops.count("aten.addmm_") == chunks  # the V x H weight gradient, one update per chunk


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("per_token", [False, True])
def test_torch_linear_cross_entropy_composition_equals_lean_path(with_bias, per_token):
    """PyTorch's chunked linear_cross_entropy + eps * (z_y - mean z): the lean path's value and gradient."""
    gen = torch.Generator().manual_seed(21)
    batch, seq, hidden_size, vocab = 3, 11, 24, 307
    hidden = torch.randn(batch, seq, hidden_size, generator=gen, requires_grad=True)
    weight = (torch.randn(vocab, hidden_size, generator=gen) * 0.3).requires_grad_()
    bias = torch.randn(vocab, generator=gen, requires_grad=True) if with_bias else None
    _, labels = make_batch(batch, seq, vocab, seed=22, prompt_len=3)
    eps = torch.rand(batch, seq, generator=gen) * 0.5 if per_token else torch.tensor([0.0, 0.2, 0.45])
    leaves = [hidden, weight] + ([bias] if with_bias else [])

    lean = label_smoothed_nll_lean(hidden, weight, labels, eps, bias=bias, num_items=50, chunk_tokens=7)
    lean_grads = torch.autograd.grad(lean, leaves)
    composed = label_smoothed_nll_linear_ce(hidden, weight, labels, eps, bias=bias, num_items=50)
    composed_grads = torch.autograd.grad(composed, leaves)

    torch.testing.assert_close(composed, lean, rtol=1e-6, atol=1e-6)  # float32 precision
    for got, want in zip(composed_grads, lean_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# --- gradient accumulation ---------------------------------------------------------------------------------


class TinyLM(torch.nn.Module):
    def __init__(self, vocab: int = 37, hidden: int = 12):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, hidden)
        self.mix = torch.nn.Linear(hidden, hidden)
        self.head = torch.nn.Linear(hidden, vocab)

    def hidden(self, ids):
        return torch.tanh(self.mix(self.embed(ids)))


@pytest.mark.parametrize("path", ["reference", "lean"])
def test_batch_8_ga_1_equals_batch_1_ga_8(path):
    torch.manual_seed(0)
    model = TinyLM()
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 37, (8, 10), generator=gen)
    labels = ids.clone()
    # prompts and padding of different lengths make micro-batches carry different token counts
    for row in range(8):
        labels[row, : 1 + row % 4] = IGNORE_INDEX
        labels[row, 10 - row % 3 :] = IGNORE_INDEX
    eps = torch.linspace(0.0, 0.35, 8)
    total_tokens = count_response_tokens(labels)

    def loss_of(rows, num_items):
        h = model.hidden(ids[rows])
        if path == "reference":
            return label_smoothed_nll_reference(model.head(h), labels[rows], eps[rows], num_items=num_items)
        return label_smoothed_nll_lean(h, model.head.weight, labels[rows], eps[rows], model.head.bias, num_items)

    model.zero_grad()
    loss_of(slice(0, 8), total_tokens).backward()
    full = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    for row in range(8):  # 8 micro-batches of one sample, one global normaliser
        loss_of(slice(row, row + 1), total_tokens).backward()
    accumulated = [p.grad.clone() for p in model.parameters()]

    for got, want in zip(accumulated, full, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


# --- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eps", "message"),
    [
        (torch.tensor([0.1, float("nan")]), "non-finite"),
        (torch.tensor([0.1, float("inf")]), "non-finite"),
        (torch.tensor([0.1, 1.0]), r"\[0, 1\)"),
        (torch.tensor([-0.01, 0.1]), r"\[0, 1\)"),
        (torch.tensor([0.1, 0.2, 0.3]), "3 values but the batch has 2"),
        (torch.zeros(2, 3), "per-token epsilon must have the labels' shape"),
    ],
)
def test_bad_epsilon_is_rejected_by_both_paths(eps, message):
    logits, labels = make_batch(2, 6, 11, seed=0)
    with pytest.raises(ValueError, match=message):
        label_smoothed_nll_reference(logits, labels, eps)
    for path in (label_smoothed_nll_lean, label_smoothed_nll_linear_ce):
        with pytest.raises(ValueError, match=message):
            path(torch.randn(2, 6, 4), torch.randn(11, 4), labels, eps)


def test_out_of_range_label_is_rejected():
    logits, labels = make_batch(1, 5, 11, seed=0)
    labels[0, -1] = 11
    with pytest.raises(ValueError, match=r"labels must be -100 or in \[0, 11\)"):
        label_smoothed_nll_reference(logits, labels, torch.zeros(1))


def test_mismatched_logits_and_labels_are_rejected():
    with pytest.raises(ValueError, match="do not match labels"):
        label_smoothed_nll_reference(torch.randn(2, 5, 7), torch.zeros(2, 4, dtype=torch.long), torch.zeros(2))


@pytest.mark.parametrize("num_items", [None, 0, 10])
def test_all_ignored_batch_gives_exact_zero_with_zero_gradient(num_items):
    logits = torch.randn(2, 5, 9, requires_grad=True)
    hidden = torch.randn(2, 5, 4, requires_grad=True)
    weight = torch.randn(9, 4, requires_grad=True)
    labels = torch.full((2, 5), IGNORE_INDEX)
    ref = label_smoothed_nll_reference(logits, labels, torch.full((2,), 0.1), num_items=num_items)
    lean = label_smoothed_nll_lean(hidden, weight, labels, torch.full((2,), 0.1), num_items=num_items)
    for loss, leaf in ((ref, logits), (lean, hidden)):
        assert loss.item() == 0.0 and not torch.isnan(loss)
        loss.backward()
        assert leaf.grad is not None and torch.count_nonzero(leaf.grad) == 0


def test_epsilon_receives_no_gradient():
    logits, labels = make_batch(2, 6, 13, seed=1)
    eps = torch.tensor([0.1, 0.2], requires_grad=True)
    label_smoothed_nll_reference(logits.requires_grad_(), labels, eps).backward()
    assert eps.grad is None


def test_bfloat16_logits_stay_close_to_float32():
    logits, labels = make_batch(2, 16, 500, seed=6)
    eps = torch.tensor([0.1, 0.3])
    full = label_smoothed_nll_reference(logits, labels, eps)
    half = label_smoothed_nll_reference(logits.bfloat16(), labels, eps)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full, rtol=2e-2, atol=2e-2)


def test_bfloat16_lean_path_stays_close_to_float32():
    gen = torch.Generator().manual_seed(7)
    hidden = torch.randn(2, 12, 32, generator=gen)
    weight = torch.randn(300, 32, generator=gen) * 0.2
    bias = torch.randn(300, generator=gen)
    _, labels = make_batch(2, 12, 300, seed=7)
    eps = torch.tensor([0.1, 0.3])

    def value_and_grads(dtype):
        leaves = [t.to(dtype).requires_grad_() for t in (hidden, weight, bias)]
        loss = label_smoothed_nll_lean(leaves[0], leaves[1], labels, eps, bias=leaves[2], chunk_tokens=5)
        return loss, torch.autograd.grad(loss, leaves)

    full, full_grads = value_and_grads(torch.float32)
    half, half_grads = value_and_grads(torch.bfloat16)
    assert half.dtype == torch.float32 and all(g.dtype == torch.bfloat16 for g in half_grads)
    torch.testing.assert_close(half, full, rtol=2e-2, atol=2e-2)
    for got, want in zip(half_grads, full_grads, strict=True):
        torch.testing.assert_close(got.float(), want, rtol=5e-2, atol=5e-3)
