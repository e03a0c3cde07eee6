"""Toxicity per document from a real offline model: the linear SVM that alt-profanity-check ships.

The model was trained on short comments, so a page is scored paragraph by paragraph; the
document score is the length-weighted mean (what share of the text is toxic), and the maximum
is kept too. Scores annotate by default; filtering happens only above a configured threshold,
in the balanced spirit of "Toxicity of the Commons" (drop little, label everything).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_CHUNK_CHARS = 1000


@dataclass(frozen=True, slots=True)
class ToxicityScore:
    mean: float
    max: float


def paragraphs(text: str) -> list[str]:
    chunks: list[str] = []
    for block in text.split("\n"):
        block = block.strip()
        while block:
            chunks.append(block[:MAX_CHUNK_CHARS])
            block = block[MAX_CHUNK_CHARS:]
    return chunks


def score_toxicity(text: str) -> ToxicityScore:
    from profanity_check import predict_prob

    chunks = paragraphs(text)
    if not chunks:
        return ToxicityScore(0.0, 0.0)
    probs = predict_prob(chunks)
    weights = [len(c) for c in chunks]
    mean = float(sum(p * w for p, w in zip(probs, weights, strict=True)) / sum(weights))
    return ToxicityScore(mean, float(max(probs)))
