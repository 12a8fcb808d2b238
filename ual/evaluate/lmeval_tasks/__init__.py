"""lm-evaluation-harness task folder (``--include_path ual/evaluate/lmeval_tasks``); see
``ual_gsm8k_generation.yaml`` and ``gsm8k_generation.py``. A package only so that the hooks install with ual."""
