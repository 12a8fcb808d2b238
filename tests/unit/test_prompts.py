"""ual.prompts: one rendering and one tokenisation of a prompt for training and generation.

The tokenizer (``bos_chat_tokenizer`` of tests/conftest.py) is built in the test: a word-level ``tokenizers``
model in ``PreTrainedTokenizerFast`` that, unlike SmolLM2's, adds BOS to every text, while its chat template
renders BOS as well: the case of Llama-2-chat, Mistral-Instruct and Llama-3-Instruct, where adding the
tokenizer's specials to a rendered chat prompt gives two BOS tokens. ids are positions in ``BOS_CHAT_WORDS``.
The generation side end to end (a model fed these ids): tests/integration/test_generate.py.
"""

from __future__ import annotations

import pytest

from ual.collate import tokenize_example
from ual.losses import IGNORE_INDEX
from ual.prompts import encode_prompts, render_example, render_prompt, user_turn
from ual.tasks import TASKS

RECORD = {"id": "a", "dataset": "t", "instruction": "Add 2 and 3.", "input": "", "output": " 5. "}


@pytest.fixture(scope="module")
def bos_tokenizer(bos_chat_tokenizer):
    assert bos_chat_tokenizer("Add 2")["input_ids"] == [0, 5, 6]  # the case under test: BOS on any text
    return bos_chat_tokenizer


def test_chat_training_prompt_has_one_bos_and_the_ids_transformers_gives_the_chat(bos_tokenizer):
    example = tokenize_example(RECORD, bos_tokenizer, "chat", max_length=64)
    n_prompt = example["labels"].count(IGNORE_INDEX)
    prompt_ids = example["input_ids"][:n_prompt]
    # <s> [user] Add 2 and 3. [assistant] | 5. </s>
    assert prompt_ids == [0, 3, 5, 6, 7, 8, 4]
    assert example["input_ids"][n_prompt:] == example["labels"][n_prompt:] == [9, 1]
    messages = [{"role": "user", "content": "Add 2 and 3."}]
    reference = bos_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    assert prompt_ids == reference["input_ids"]


def test_chat_generation_prompt_ids_equal_the_training_prompt_ids(bos_tokenizer):
    task = TASKS["alpacaeval"]  # the task whose prompt is the model's template
    template = task.prompt_template("chat")
    prompt = task.render_prompt(RECORD, "chat", bos_tokenizer)
    assert prompt == render_example(RECORD, bos_tokenizer, "chat")[0] == "<s>[user] Add 2 and 3. [assistant]"
    generation_ids = encode_prompts([prompt], bos_tokenizer, template)["input_ids"][0]
    example = tokenize_example(RECORD, bos_tokenizer, "chat", max_length=64)
    assert generation_ids == example["input_ids"][: example["labels"].count(IGNORE_INDEX)]


def test_alpaca_text_gets_the_tokenizers_bos_once(bos_tokenizer):
    record = {**RECORD, "instruction": "Hello", "output": "there."}
    prompt_ids = encode_prompts(render_prompt(record, "alpaca"), bos_tokenizer, "alpaca")["input_ids"]
    assert prompt_ids[0] == 0 and prompt_ids.count(0) == 1
    example = tokenize_example(record, bos_tokenizer, "alpaca", max_length=512)
    assert example["input_ids"] == prompt_ids + [11, 1]  # " there." -> "there.", then EOS


def test_user_turn_appends_the_input_after_a_blank_line():
    assert user_turn({"instruction": "Translate.", "input": "Bonjour"}) == "Translate.\n\nBonjour"
    assert user_turn({"instruction": "Translate.", "input": ""}) == "Translate."


def test_chat_without_a_template_is_an_error(bos_tokenizer):
    from transformers import PreTrainedTokenizerFast

    plain = PreTrainedTokenizerFast(tokenizer_object=bos_tokenizer.backend_tokenizer, eos_token="</s>")
    with pytest.raises(ValueError, match="model.prompt_template is 'chat' but the tokenizer has no chat"):
        render_prompt(RECORD, "chat", plain)
