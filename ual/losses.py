"""UAL loss: label-smoothed cross-entropy with a per-sample smoothing value epsilon.

For a response token with target y, logits z over V classes and the sample's epsilon (docs/method.md)::

    CE_eps = (1 - eps) * (-log p_y) + eps * mean_v(-log p_v)          # mass eps/V on every class
           = CE + eps * (z_y - mean_v z_v)                             # exact identity, since
                                                                       # -log p_v = logsumexp(z) - z_v

This is the PyTorch ``cross_entropy(label_smoothing=eps)`` and transformers ``LabelSmoother``
convention (uniform mass over all V classes, target included). Positions labelled -100 (prompt,
padding) are excluded. The loss is the **sum** over response tokens divided by an explicit normaliser
``num_items``: pass the count of non-ignored tokens of the *global* batch (all gradient-accumulation
micro-batches, all ranks) and the gradient no longer depends on how the batch is split.

Two paths that agree to fp32 rounding (tests/unit/test_losses.py):

- ``label_smoothed_nll_reference(logits, ...)``: from materialised logits (B, T, V), float32 softmax.
- ``label_smoothed_nll_lean(hidden, weight, ...)``: from the last hidden states (B, T, H) and the LM head
  (V, H). Only response tokens are gathered; their logits are built a chunk of tokens at a time, and the
  gradient of each chunk is written in the same pass (the fused-linear-cross-entropy technique), so no
  B x T x V tensor ever exists. Peak extra memory is one (chunk, V) float32 block.

Edge cases, by contract: epsilon must be finite and in [0, 1) and of shape (B,) (per sample) or (B, T)
(per token, for packed sequences whose segments carry their own epsilon), else ``ValueError``; labels
must be -100 or in [0, V); a batch with no response token at all gives an exact zero loss (still
attached to the graph, so a data-parallel step does not hang), never NaN.

Benchmark: ``python benchmarks/loss.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100

__all__ = [
    "IGNORE_INDEX",
    "count_response_tokens",
    "label_smoothed_nll_reference",
    "label_smoothed_nll_lean",
]


def count_response_tokens(labels: torch.Tensor, shift: bool = True) -> int:
    """Number of tokens that carry a loss: the normaliser for one micro-batch.

    Sum this over all micro-batches of an optimiser step (and all ranks) to get ``num_items``.
    """
    if shift:
        labels = labels[..., 1:]
    return int((labels != IGNORE_INDEX).sum())


def _token_epsilon(epsilon: torch.Tensor | float, labels: torch.Tensor) -> torch.Tensor:
    """Validate epsilon and broadcast it to one float32 value per label position, shape (B, T)."""
    if not isinstance(epsilon, torch.Tensor):
        epsilon = torch.tensor(float(epsilon))
    epsilon = epsilon.detach().to(device=labels.device, dtype=torch.float32)
    batch, seq = labels.shape
    if epsilon.dim() == 0:
        epsilon = epsilon.expand(batch)
    if epsilon.dim() == 1:
        if epsilon.shape[0] != batch:
            raise ValueError(f"epsilon has {epsilon.shape[0]} values but the batch has {batch} samples")
        epsilon = epsilon[:, None].expand(batch, seq)
    elif epsilon.shape != labels.shape:
        raise ValueError(
            f"per-token epsilon must have the labels' shape {tuple(labels.shape)}, got {tuple(epsilon.shape)}"
        )
    if not torch.isfinite(epsilon).all():
        raise ValueError("epsilon contains a non-finite value (NaN or inf)")
    if (epsilon < 0).any() or (epsilon >= 1).any():
        raise ValueError(
            f"epsilon must lie in [0, 1); got min {epsilon.min().item():.4g}, max {epsilon.max().item():.4g}"
        )
    return epsilon


def _accumulation_dtype(tensor: torch.Tensor) -> torch.dtype:
    """float32 for bf16/fp16/fp32 inputs (softmax precision), float64 stays float64 (gradient checks)."""
    return torch.promote_types(tensor.dtype, torch.float32)


def _check_labels(labels: torch.Tensor, vocab_size: int) -> torch.Tensor:
    if labels.dim() != 2:
        raise ValueError(f"labels must have shape (B, T), got {tuple(labels.shape)}")
    mask = labels != IGNORE_INDEX
    if mask.any():
        kept = labels[mask]
        if kept.min() < 0 or kept.max() >= vocab_size:
            raise ValueError(
                f"labels must be {IGNORE_INDEX} or in [0, {vocab_size}); got range "
                f"[{kept.min().item()}, {kept.max().item()}]"
            )
    return mask


def _normalise(total: torch.Tensor, num_items: int | torch.Tensor | None, local_count: int) -> torch.Tensor:
    if num_items is None:
        num_items = local_count
    if isinstance(num_items, torch.Tensor):
        # a global count gathered across ranks; it is >= the local count, so clamping only guards 0/0
        num_items = num_items.to(total.device).clamp(min=1)
    elif num_items < 0:
        raise ValueError(f"num_items must be >= 0, got {num_items}")
    if local_count == 0 or (not isinstance(num_items, torch.Tensor) and num_items == 0):
        return total * 0.0  # no response token: exact zero, graph kept (documented)
    return total / num_items


def label_smoothed_nll_reference(
    logits: torch.Tensor,
    labels: torch.Tensor,
    epsilon: torch.Tensor | float,
    num_items: int | torch.Tensor | None = None,
    shift: bool = True,
) -> torch.Tensor:
    """Per-sample label-smoothed CE from materialised logits (the reference path).

    Args:
        logits: (B, T, V), any float dtype; the softmax is computed in float32.
        labels: (B, T) int64, -100 where no loss is taken.
        epsilon: (B,) per sample, (B, T) per token, or a scalar; in [0, 1).
        num_items: normaliser; None = this batch's own count of response tokens (a token mean).
        shift: causal LM: logits at position t predict labels at t + 1.

    Returns:
        Scalar float32: sum_t CE_eps(t) / num_items.
    """
    if logits.dim() != 3 or logits.shape[:2] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}")
    eps = _token_epsilon(epsilon, labels)
    if shift:
        logits, labels, eps = logits[:, :-1], labels[:, 1:], eps[:, 1:]
    mask = _check_labels(labels, logits.shape[-1])
    logp = F.log_softmax(logits.to(_accumulation_dtype(logits)), dim=-1)  # (B, T, V)
    eps = eps.to(logp.dtype)
    nll = -logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)
    uniform = -logp.mean(dim=-1)  # (B, T): mean_v(-log p_v)
    per_token = (1.0 - eps) * nll + eps * uniform
    total = torch.where(mask, per_token, torch.zeros_like(per_token)).sum()
    return _normalise(total, num_items, int(mask.sum()))


class _FusedLinearSmoothedCE(torch.autograd.Function):
    """sum_i CE_eps_i over N gathered tokens from h (N, H) and the LM head; gradients made in forward.

    The loss is a scalar at the end of the graph, so d(sum)/d(logits) = softmax - (1-eps)*onehot - eps/V
    can be formed chunk by chunk while the chunk's logits exist, and contracted straight into the
    gradients of h, W and b. Backward only rescales them by the incoming gradient.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, targets, eps, chunk_tokens):  # noqa: D102
        n_tokens, vocab = h.shape[0], weight.shape[0]
        want_h, want_w, want_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        acc = _accumulation_dtype(h)
        eps = eps.to(acc)
        total = torch.zeros((), dtype=acc, device=h.device)
        grad_h = torch.empty_like(h) if want_h else None
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if want_w else None
        grad_b = torch.zeros(vocab, dtype=acc, device=h.device) if want_b else None
        for start in range(0, n_tokens, chunk_tokens):
            stop = min(start + chunk_tokens, n_tokens)
            h_c, y_c, e_c = h[start:stop], targets[start:stop], eps[start:stop]
            z = h_c @ weight.T  # (C, V) in the compute dtype
            if bias is not None:
                z = z + bias
            z = z.to(acc)
            lse = torch.logsumexp(z, dim=-1)
            z_y = z.gather(-1, y_c[:, None]).squeeze(-1)
            z_mean = z.mean(dim=-1)
            total += (lse - z_y + e_c * (z_y - z_mean)).sum()
            if want_h or want_w or want_b:
                # dL/dz = softmax(z) - (1 - eps) * onehot(y) - eps / V, built in place over z.
                grad_z = z.sub_(lse[:, None]).exp_()
                grad_z.sub_(e_c[:, None] / vocab)
                grad_z.scatter_add_(-1, y_c[:, None], (e_c - 1.0)[:, None])
                if want_h:
                    grad_h[start:stop] = (grad_z.to(weight.dtype) @ weight).to(h.dtype)
                if want_w:
                    grad_w.addmm_(grad_z.T, h_c.to(acc))
                if want_b:
                    grad_b += grad_z.sum(dim=0)
        ctx.save_for_backward(
            grad_h if want_h else None,
            grad_w.to(weight.dtype) if want_w else None,
            grad_b.to(bias.dtype) if want_b else None,
        )
        return total

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        grads = list(ctx.saved_tensors)
        # The loss is usually the graph's root (grad_out == 1): hand the saved gradients over without
        # another weight-sized copy. Otherwise (loss scaling, sums of losses) rescale out of place.
        if not torch.equal(grad_out, torch.ones_like(grad_out)):
            grads = [g * grad_out.to(g.dtype) if g is not None else None for g in grads]
        return (*grads, None, None, None)


def default_chunk_tokens(vocab_size: int, budget_bytes: int = 64 * 2**20) -> int:
    """Tokens per chunk so that one (chunk, V) float32 block stays within ``budget_bytes``."""
    return max(1, budget_bytes // (4 * vocab_size))


def label_smoothed_nll_lean(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    epsilon: torch.Tensor | float,
    bias: torch.Tensor | None = None,
    num_items: int | torch.Tensor | None = None,
    shift: bool = True,
    chunk_tokens: int | None = None,
) -> torch.Tensor:
    """Per-sample label-smoothed CE without materialising (B, T, V) logits (the memory-lean path).

    Equal to ``label_smoothed_nll_reference(hidden @ weight.T + bias, ...)`` in value and gradient.
    Valid only for a plain linear LM head (no logit soft-capping or scaling, which break the identity).

    Args:
        hidden: (B, T, H) last hidden states (after the final norm), any float dtype.
        weight: (V, H) LM head weight. bias: (V,) or None.
        labels, epsilon, num_items, shift: as in ``label_smoothed_nll_reference``.
        chunk_tokens: tokens per chunk; default keeps a (chunk, V) float32 block <= 64 MiB.
    """
    if hidden.dim() != 3 or hidden.shape[:2] != labels.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} does not match labels {tuple(labels.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"LM head weight {tuple(weight.shape)} does not match hidden size {hidden.shape[-1]}")
    eps = _token_epsilon(epsilon, labels)
    if shift:
        hidden, labels, eps = hidden[:, :-1], labels[:, 1:], eps[:, 1:]
    mask = _check_labels(labels, weight.shape[0])
    h = hidden[mask]  # (N, H): only response tokens ever reach the LM head
    chunk = chunk_tokens or default_chunk_tokens(weight.shape[0])
    total = _FusedLinearSmoothedCE.apply(h, weight, bias, labels[mask], eps[mask], chunk)
    if h.shape[0] == 0:
        total = total + hidden.sum() * 0.0  # keep the graph for an all-ignored micro-batch
    return _normalise(total, num_items, h.shape[0])
