"""Dagster definitions of the cleaned stage: per-shard filtering, then cross-shard deduplication."""

import dataclasses
import time
from collections import Counter
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from assets.cleaned.clean import Cleaned, CleaningPolicy, clean_document
from assets.cleaned.dedup import DEDUP_CODE_VERSION, KEEP_POLICIES, DedupPolicy, publish_duplicates
from assets.cleaned.filters import FilterConfig
from assets.cleaned.minhash import MinHashConfig
from assets.cleaned.pii import PiiPolicy
from assets.cleaned.schema import CLEANED_DOCUMENTS_SCHEMA, SIGNALS_SCHEMA
from assets.contracts import Contract, balance_check, check_specs, contract_check
from assets.documents import DROPPED_SCHEMA
from assets.partitions import crawl_shards
from resources.lake import Lake
from resources.langid import LanguageIdentifier

CODE_VERSION = "cleaned-1"
CONTRACT = Contract(
    columns=tuple(CLEANED_DOCUMENTS_SCHEMA.names),
    not_null=("doc_id", "language", "content_hash", "text"),
    ranges={"language_score": (0.0, 1.0), "n_chars": (1, None), "toxicity": (0.0, 1.0)},
)


class CleanedConfig(dg.Config):
    """Thresholds of the cleaned stage; filter parameters keep their published defaults."""

    min_language_score: float = Field(0.65, description="Drop documents below this LID score.")
    languages: list[str] | None = Field(None, description="ISO 639-1 codes to keep; None = all.")
    gopher_repetition: bool = True
    gopher_quality: bool = True
    c4: bool = True
    fineweb_quality: bool = True
    max_toxicity: float | None = Field(
        None, description="Drop above this toxicity (0-1); None only annotates the score."
    )
    redact_emails: bool = True
    redact_phones: bool = True
    redact_ips: bool = True
    phone_region: str = Field("US", description="Region for phone numbers without +prefix.")
    filter_overrides: dict[str, float] = Field(
        default_factory=dict,
        description='Override one filter parameter, e.g. {"gopher_quality.min_doc_words": 30}.',
    )

    def policy(self) -> CleaningPolicy:
        filters = FilterConfig()
        for name in ("gopher_repetition", "gopher_quality", "c4", "fineweb_quality"):
            if not getattr(self, name):
                filters = dataclasses.replace(filters, **{name: None})
        for key, value in self.filter_overrides.items():
            filters = _override(filters, key, value)
        languages = tuple(self.languages) if self.languages is not None else None
        pii = PiiPolicy(self.redact_emails, self.redact_phones, self.redact_ips, self.phone_region)
        return CleaningPolicy(self.min_language_score, languages, filters, pii, self.max_toxicity)


def _bin(value: float, width: float = 0.1) -> str:
    low = min(int(value / width), int(1 / width) - 1) * width
    return f"{low:.1f}-{low + width:.1f}"


def _histogram(bins: Counter[str]) -> str:
    rows = [f"| {b} | {n} | {'#' * min(n, 60)} |" for b, n in sorted(bins.items())]
    return "\n".join(["| toxicity | documents | |", "| --- | ---: | --- |", *rows])


def _override(filters: FilterConfig, key: str, value: float) -> FilterConfig:
    group, _, param = key.partition(".")
    section = getattr(filters, group, None)
    if section is None or not hasattr(section, param):
        raise dg.Failure(f"Unknown filter parameter {key!r} in filter_overrides")
    kind = type(getattr(section, param))
    return dataclasses.replace(
        filters, **{group: dataclasses.replace(section, **{param: kind(value)})}
    )


@dg.asset(
    partitions_def=crawl_shards,
    group_name="cleaned",
    code_version=CODE_VERSION,
    deps=["raw_documents"],
    check_specs=check_specs("cleaned_documents"),
    kinds={"parquet", "duckdb"},
)
def cleaned_documents(
    context: dg.AssetExecutionContext,
    config: CleanedConfig,
    lake: Lake,
    language_identifier: LanguageIdentifier,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Raw documents of one shard after Unicode repair, language ID and the quality filters."""
    shard, policy = context.partition_key, config.policy()
    rules: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    pii: Counter[str] = Counter()
    toxicity_bins: Counter[str] = Counter()
    rows_in, started = 0, time.perf_counter()
    with lake.publish(
        "cleaned_documents", shard, run_id=context.run_id, code_version=CODE_VERSION
    ) as out:
        kept = out.table("documents", CLEANED_DOCUMENTS_SCHEMA)
        dropped = out.table("dropped", DROPPED_SCHEMA)
        signals = out.table("signals", SIGNALS_SCHEMA)
        for doc in lake.iter_rows("raw_documents", partitions=[shard]):
            rows_in += 1
            result = clean_document(doc, language_identifier.identify, policy)
            if isinstance(result, Cleaned):
                kept.append(result.row)
                languages[result.row["language"]] += 1
                for kind in ("emails", "phones", "ips"):
                    pii[kind] += result.row[f"pii_{kind}"]
                toxicity_bins[_bin(result.row["toxicity"])] += 1
                for name, value in result.signals.items():
                    signals.append({"doc_id": doc["doc_id"], "signal": name, "value": value})
            else:
                dropped.append(result.row())
                rules[result.rule] += 1
    seconds = time.perf_counter() - started
    context.log.info(f"{shard}: kept {kept.rows} of {rows_in} in {seconds:.1f}s")
    yield dg.MaterializeResult(
        metadata={
            "rows_in": rows_in,
            "kept": kept.rows,
            "dropped": dropped.rows,
            "dropped_by_rule": dg.MetadataValue.json(dict(rules.most_common())),
            "languages": dg.MetadataValue.json(dict(languages.most_common())),
            "pii_replaced": dg.MetadataValue.json(dict(pii)),
            "toxicity_histogram": dg.MetadataValue.md(_histogram(toxicity_bins)),
            "docs_per_s": round(rows_in / max(seconds, 1e-9), 1),
            "compute_s": round(seconds, 3),
        }
    )
    files = lake.files("cleaned_documents", partitions=[shard])
    yield contract_check("cleaned_documents", [f.path for f in files], CONTRACT)
    yield balance_check("cleaned_documents", rows_in, kept.rows, dropped.rows)


class DedupConfig(dg.Config):
    """FineWeb's MinHash defaults: word 5-grams, 14 bands x 8 rows = 112 hashes."""

    near_duplicates: bool = Field(True, description="MinHash near duplicates besides exact ones.")
    ngram: int = 5
    bands: int = 14
    rows: int = 8
    threshold: float = Field(0.8, description="Exact Jaccard a candidate pair must reach.")
    seed: int = 1
    confirm: str = Field(
        "exact", description="'exact' Jaccard check of LSH pairs, or 'none' (datatrove parity)."
    )
    keep: str = Field("earliest", description=f"Which copy survives: one of {KEEP_POLICIES}.")

    def policy(self) -> DedupPolicy:
        minhash = MinHashConfig(
            self.ngram, self.bands, self.rows, self.threshold, self.seed, self.confirm
        )
        return DedupPolicy(minhash, self.near_duplicates, self.keep)


@dg.asset(
    group_name="cleaned",
    code_version=DEDUP_CODE_VERSION,
    deps=["cleaned_documents"],
    check_specs=check_specs("duplicate_clusters"),
    kinds={"parquet", "duckdb"},
)
def duplicate_clusters(
    context: dg.AssetExecutionContext, config: DedupConfig, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Exact and near duplicates across all shards: which copy is kept, which removed and why.

    Incremental: signatures of unchanged shards are reused from the previous version."""
    result = publish_duplicates(lake, config.policy(), run_id=context.run_id)
    context.log.info(
        f"{result.duplicates} duplicates in {result.clusters} clusters; signed "
        f"{len(result.shards_signed)} shards, reused {len(result.shards_reused)}"
    )
    yield dg.MaterializeResult(
        metadata={
            "documents": result.rows_in,
            "clusters": result.clusters,
            "duplicates_removed": result.duplicates,
            "exact_pairs": result.exact_pairs,
            "near_duplicate_pairs": result.near_pairs,
            "shards_signed": dg.MetadataValue.json(result.shards_signed),
            "shards_reused": dg.MetadataValue.json(result.shards_reused),
            "compute_s": round(result.seconds, 3),
        }
    )
    files = lake.files("duplicate_clusters")
    yield contract_check("duplicate_clusters", [f.path for f in files], DEDUP_CONTRACT)
    yield balance_check("duplicate_clusters", result.rows_in, result.kept, result.duplicates)


DEDUP_CONTRACT = Contract(
    columns=("doc_id", "cluster_id", "kept_doc_id", "similarity", "method", "is_kept"),
    ranges={"similarity": (0.0, 1.0)},
)
