"""Readable cluster labels from class-based TF-IDF (c-TF-IDF, as in BERTopic).

Each cluster's documents are treated as one class document; terms frequent in that cluster and
rare across clusters name it.
"""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

TOKEN_PATTERN = r"(?u)\b[^\W\d_]{3,}\b"


def ctfidf_terms(texts: list[str], labels: np.ndarray, k: int, top_n: int = 5) -> list[list[str]]:
    """Top distinctive terms per cluster id 0..k-1."""
    class_docs = [" ".join(texts[i] for i in np.flatnonzero(labels == c)) for c in range(k)]
    vectorizer = CountVectorizer(
        token_pattern=TOKEN_PATTERN, stop_words="english", lowercase=True, max_features=50_000
    )
    counts = vectorizer.fit_transform(class_docs).astype(np.float64)
    vocabulary = np.asarray(vectorizer.get_feature_names_out())
    tf = counts.multiply(1.0 / np.maximum(counts.sum(axis=1), 1)).tocsr()
    mean_words = counts.sum() / max(k, 1)
    idf = np.log(1.0 + mean_words / np.maximum(np.asarray(counts.sum(axis=0)).ravel(), 1))
    scores = tf.multiply(idf).toarray()
    terms = []
    for row in scores:
        best = np.argsort(-row)[:top_n]
        terms.append([str(vocabulary[i]) for i in best if row[i] > 0])
    return terms
