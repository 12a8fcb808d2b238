"""ual: reproducibility package for "Uncertainty Aware Learning for Language Model Alignment" (ACL 2024).

Stages, each a module run as ``python -m ual.<stage>``: elicit (uncertainty per training sample),
smoothing (uncertainty -> epsilon), train (SFT / LS / UAL), generate and evaluate (AlpacaEval, GSM8K,
MATH), analysis (token clustering), report (paper_tables/ and figures/). See README.md and docs/.
"""

__version__ = "0.1.0"
