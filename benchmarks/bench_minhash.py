"""Near-duplicate removal, ours against datatrove's MinHash pipeline, on the same documents.

Documents: the pages of both bundled crawls plus an edited copy of each (0-8% of words
replaced), so there are real near duplicates to find. Both sides use word 5-grams, 14 bands x 8
rows; datatrove runs signatures -> buckets -> clusters in one process, as its local executor
would with one task. Ours runs with `confirm="none"` (every band collision is a duplicate, as in
datatrove) for the speed ratio and the Jaccard of the two removed sets, and once more with the
default exact-Jaccard confirmation for reference.
"""

from __future__ import annotations

import random
import tempfile
import time

import polars as pl

from assets.cleaned.dedup import choose_kept, cluster_members
from assets.cleaned.minhash import (
    BandIndex,
    MinHashConfig,
    MinHasher,
    candidate_pairs,
    verify_pairs,
)
from benchmarks.bench_filters import load_texts


def planted_documents(seed: int = 7, min_words: int = 20) -> list[tuple[str, str]]:
    texts = list(dict.fromkeys(t for t, _ in load_texts() if len(t.split()) >= min_words))
    rng = random.Random(seed)
    vocabulary = [w for t in texts[:30] for w in t.split()]
    docs = []
    for i, text in enumerate(texts):
        rate = rng.uniform(0.0, 0.08)
        edited = " ".join(
            rng.choice(vocabulary) if rng.random() < rate else w for w in text.split()
        )
        docs += [(f"{2 * i:06d}", text), (f"{2 * i + 1:06d}", edited)]
    return docs


def ours(docs: list[tuple[str, str]], confirm: str) -> set[str]:
    config = MinHashConfig(confirm=confirm)
    hasher = MinHasher(config)
    signed = ((d, hasher.signature(t)) for d, t in docs)
    if confirm == "none":
        pairs = candidate_pairs(signed, BandIndex(hasher), 0.0)
    else:
        candidates = candidate_pairs(signed, BandIndex(hasher), config.threshold - 0.2)
        pairs = verify_pairs(candidates, dict(docs), config)
    frame = pl.DataFrame(
        {
            "doc_id": [d for d, _ in docs],
            "shard": ["s"] * len(docs),
            "source_offset": list(range(len(docs))),
            "n_chars": [len(t) for _, t in docs],
        }
    )
    edges = pl.DataFrame(
        [(a, b, s, "minhash") for a, b, s in pairs],
        schema=["a", "b", "similarity", "method"],
        orient="row",
    )
    clusters = choose_kept(cluster_members(frame, edges), frame, "earliest", None)
    return set(clusters.filter(~pl.col("is_kept"))["doc_id"])


def datatrove(docs: list[tuple[str, str]]) -> set[str]:
    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.utils.hashing import HashConfig

    # FineWeb hashed shingles with sha1; datatrove's xxhash path passes str to xxhash 4, which
    # now refuses anything but bytes.
    config = MinhashConfig(hash_config=HashConfig(hash_fc="sha1"))
    with tempfile.TemporaryDirectory() as tmp:

        def documents():
            return (Document(text=t, id=d) for d, t in docs)

        MinhashDedupSignature(output_folder=f"{tmp}/sigs", config=config).run(documents(), 0, 1)
        buckets = MinhashDedupBuckets(f"{tmp}/sigs", f"{tmp}/buckets", config=config)
        for bucket in range(config.num_buckets):
            buckets.run(None, bucket, config.num_buckets)
        MinhashDedupCluster(f"{tmp}/buckets", f"{tmp}/remove", config=config).run(None, 0, 1)
        kept = {doc.id for doc in MinhashDedupFilter(f"{tmp}/remove").run(documents(), 0, 1)}
    return {d for d, _ in docs} - kept


def run() -> dict:
    docs = planted_documents()
    started = time.perf_counter()
    removed_ours = ours(docs, confirm="none")  # datatrove's semantics, for the agreement figure
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    removed_exact = ours(docs, confirm="exact")
    exact_s = time.perf_counter() - started
    started = time.perf_counter()
    removed_theirs = datatrove(docs)
    theirs_s = time.perf_counter() - started
    union = removed_ours | removed_theirs
    return {
        "docs": len(docs),
        "ours_docs_per_s": round(len(docs) / ours_s, 1),
        "datatrove_docs_per_s": round(len(docs) / theirs_s, 1),
        "speedup": round(theirs_s / ours_s, 2),
        "ours_exact_confirm_docs_per_s": round(len(docs) / exact_s, 1),
        "removed_ours_exact_confirm": len(removed_exact),
        "removed_ours": len(removed_ours),
        "removed_datatrove": len(removed_theirs),
        "removed_sets_jaccard": round(len(removed_ours & removed_theirs) / len(union), 4)
        if union
        else 1.0,
    }
