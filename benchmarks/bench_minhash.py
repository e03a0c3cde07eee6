"""Near-duplicate removal, ours against datatrove's MinHash pipeline, on the same documents.

Documents: the pages of both bundled crawls plus an edited copy of each (0-8% of words
replaced), so there are real near duplicates to find. Both sides use FineWeb's configuration:
datatrove's text simplification and English word tokenizer, word 5-grams hashed with SHA-1
(datatrove's ``hash_fc="sha1"``; its default xxhash path passes str to xxhash 4, which now
refuses anything but bytes), 112 permutations from ``RandomState(1)``, 14 bands x 8 rows.
Both sides run their whole production path with its reads and writes: datatrove's signatures ->
buckets -> clusters -> filter in one process (its local executor with one task, files in a temp
folder); ours is `publish_duplicates`, what the two assets run: `minhash_signatures` reads the
cleaned shard from a fresh lake, signs it and writes its signatures and sorted band keys, then
`duplicate_clusters` buckets the bands out of core (DuckDB), clusters the pairs and writes its
version's tables. Ours
runs with ``confirm="none"`` (every band collision is a duplicate, as in datatrove) for the speed
ratio and the agreement of the removed sets, and once more with the default exact-Jaccard
confirmation for reference.

Speed is docs per CPU second of this process (one core). Both sides load their word tokenizer
before timing; every pass is cold: ours starts on a fresh lake with its memos (words per chunk,
accent-free text pieces) emptied, datatrove in a fresh folder. Passes are interleaved `repeats`
times and the fastest of each kind is reported (the machine is shared).
"""

from __future__ import annotations

import random
import tempfile

import polars as pl

from assets.cleaned.dedup import DedupPolicy, publish_duplicates
from assets.cleaned.minhash import MinHashConfig, clear_memos
from assets.cleaned.schema import CLEANED_DOCUMENTS_SCHEMA
from assets.documents import content_hash
from benchmarks.bench_filters import Timing, fastest, load_texts, timed
from resources.lake import Lake


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


def cleaned_lake(docs: list[tuple[str, str]], home: str) -> Lake:
    """A fresh lake holding `docs` as one cleaned shard: what duplicate_clusters reads."""
    lake = Lake(home=home)
    frame = pl.DataFrame(
        {
            "doc_id": [d for d, _ in docs],
            "shard": ["s"] * len(docs),
            "text": [t for _, t in docs],
            "language": ["en"] * len(docs),
            "content_hash": [content_hash(t) for _, t in docs],
            "n_chars": [len(t) for _, t in docs],
            "source_offset": list(range(len(docs))),
        }
    )
    with lake.publish("cleaned_documents", "s", run_id="bench") as out:
        out.write("documents", frame, CLEANED_DOCUMENTS_SCHEMA)
    return lake


def ours(lake: Lake, confirm: str) -> set[str]:
    """The production path: `publish_duplicates` signs the shard into `minhash_signatures`, then
    buckets, clusters and publishes `duplicate_clusters`, as the two assets do."""
    publish_duplicates(lake, DedupPolicy(MinHashConfig(confirm=confirm)), run_id="bench")
    return set(lake.scan("duplicate_clusters", "dropped").collect()["doc_id"])


def timed_ours(docs: list[tuple[str, str]], confirm: str) -> Timing:
    """One cold pass on a fresh lake: nothing signed before, memos emptied; building the input
    lake is not timed (datatrove's input is an in-memory generator)."""
    clear_memos()
    with tempfile.TemporaryDirectory() as home:
        lake = cleaned_lake(docs, home)
        return timed(lambda: ours(lake, confirm))


def datatrove_tokenizer():
    """datatrove's English word tokenizer, loaded and used once (spaCy loads lazily)."""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    tokenizer = load_word_tokenizer("eng")
    tokenizer.word_tokenize("warm up")
    return tokenizer


def datatrove(docs: list[tuple[str, str]], tokenizer=None) -> set[str]:
    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.utils.hashing import HashConfig

    config = MinhashConfig(hash_config=HashConfig(hash_fc="sha1"))
    language = tokenizer if tokenizer is not None else "eng"
    with tempfile.TemporaryDirectory() as tmp:

        def documents():
            return (Document(text=t, id=d) for d, t in docs)

        signer = MinhashDedupSignature(f"{tmp}/sigs", config=config, language=language)
        signer.run(documents(), 0, 1)
        buckets = MinhashDedupBuckets(f"{tmp}/sigs", f"{tmp}/buckets", config=config)
        for bucket in range(config.num_buckets):
            buckets.run(None, bucket, config.num_buckets)
        MinhashDedupCluster(f"{tmp}/buckets", f"{tmp}/remove", config=config).run(None, 0, 1)
        kept = {doc.id for doc in MinhashDedupFilter(f"{tmp}/remove").run(documents(), 0, 1)}
    return {d for d, _ in docs} - kept


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def run(repeats: int = 3) -> dict:
    from datatrove.utils.logging import logger

    logger.remove()  # datatrove logs every bucket; the figures are the output here
    docs = planted_documents()
    tokenizer = datatrove_tokenizer()
    timed_ours(docs[:2], "none")  # loads spaCy's English tokenizer on our side, as datatrove's
    cold, exact, theirs = [], [], []
    for _ in range(repeats):
        cold.append(timed_ours(docs, "none"))
        exact.append(timed_ours(docs, "exact"))
        theirs.append(timed(lambda: datatrove(docs, tokenizer)))
    mine, confirmed, dt = fastest(cold), fastest(exact), fastest(theirs)
    return {
        "docs": len(docs),
        "repeats": repeats,
        "ours_docs_per_cpu_s": round(len(docs) / mine.cpu_s, 1),
        "datatrove_docs_per_cpu_s": round(len(docs) / dt.cpu_s, 1),
        "speedup": round(dt.cpu_s / mine.cpu_s, 2),
        "speedup_wall": round(dt.wall_s / mine.wall_s, 2),
        "ours_exact_confirm_docs_per_cpu_s": round(len(docs) / confirmed.cpu_s, 1),
        "removed_ours": len(mine.result),
        "removed_datatrove": len(dt.result),
        "removed_ours_exact_confirm": len(confirmed.result),
        "removed_sets_jaccard": round(jaccard(mine.result, dt.result), 4),
    }
