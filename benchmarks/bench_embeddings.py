"""Embedding throughput of the pipeline's embedder against a bare SentenceTransformer.encode.

Same texts, same model, same device, measured in one run; the vectors must agree (cosine >= 0.999)
for the ratio to count.
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks.bench_filters import load_texts
from resources.embedder import Embedder

ROUNDS = 3


def run() -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    texts = [text for text, _ in load_texts()]
    embedder = Embedder()
    embedder.load()
    bare = SentenceTransformer(embedder._model_path(), device=embedder.load().device.type)
    bare.encode(texts[:8])  # warm both up
    embedder.encode(texts[:8])

    ours_s, theirs_s = float("inf"), float("inf")
    for _ in range(ROUNDS):  # alternate, keep each side's best: no side pays for going first
        started = time.perf_counter()
        ours = embedder.encode(texts)
        ours_s = min(ours_s, time.perf_counter() - started)
        started = time.perf_counter()
        theirs = bare.encode(texts, batch_size=64, normalize_embeddings=True)
        theirs_s = min(theirs_s, time.perf_counter() - started)
    agreement = float(np.min(np.sum(ours * theirs, axis=1)))
    return {
        "docs": len(texts),
        "device": str(bare.device),
        "ours_docs_per_s": round(len(texts) / ours_s, 1),
        "bare_encode_docs_per_s": round(len(texts) / theirs_s, 1),
        "ratio": round(theirs_s / ours_s, 3),
        "min_cosine_between_paths": round(agreement, 5),
    }
