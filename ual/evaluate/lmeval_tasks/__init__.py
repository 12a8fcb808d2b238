"""lm-evaluation-harness task folder (``--include_path ual/evaluate/lmeval_tasks``); see
``ual_gsm8k_metamath.yaml`` and ``metamath_gsm8k.py``. A package only so that the hooks install with ual."""
