"""Dagster definitions of the cleaned stage: per-shard filtering, then cross-shard deduplication."""

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from assets.cleaned.clean import (
    CleaningPolicy,
    clean_shard,
    toxicity_histogram,
    with_overrides,
)
from assets.cleaned.decontaminate import (
    DECONTAM_CODE_VERSION,
    EVAL_DIR_ENV,
    DecontamPolicy,
    EvalSet,
    EvalSetError,
    decontaminate,
    eval_sets_in,
    index_fingerprint,
)
from assets.cleaned.dedup import (
    DEDUP_CODE_VERSION,
    DedupPolicy,
    KeepPolicy,
    StaleSignaturesError,
    deduplicate,
)
from assets.cleaned.filters import ParityMode, filters_for
from assets.cleaned.minhash import MinHashConfig, MinHasher
from assets.cleaned.pii import PiiPolicy
from assets.cleaned.schema import CLEANED_DOCUMENTS_SCHEMA, SIGNALS_SCHEMA
from assets.cleaned.signatures import SIGNATURES_CODE_VERSION, sign_into
from assets.contracts import DEFAULT_MAX_DROP_SHARE, Contract, check_specs
from assets.corpus import catalog_rows
from assets.defaults import default_of
from assets.documents import DROPPED_SCHEMA
from assets.partitions import crawl_shards
from assets.publishing import Publication
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

    parity: ParityMode = Field(
        "per_language",
        description="'per_language' adapts Gopher's stop words and word-shape rules per language "
        "(FineWeb2); 'datatrove' applies FineWeb's English defaults everywhere, as datatrove does.",
    )
    min_language_score: float = Field(
        default_of(CleaningPolicy, "min_language_score"),
        description="Drop documents below this LID score.",
    )
    languages: list[str] | None = Field(None, description="ISO 639-1 codes to keep; None = all.")
    gopher_repetition: bool = True
    gopher_quality: bool = True
    c4: bool = True
    fineweb_quality: bool = True
    max_toxicity: float | None = Field(
        default_of(CleaningPolicy, "max_toxicity"),
        description="Drop above this toxicity (0-1); None only annotates the score.",
    )
    redact_emails: bool = default_of(PiiPolicy, "emails")
    redact_phones: bool = default_of(PiiPolicy, "phones")
    redact_ips: bool = default_of(PiiPolicy, "ips")
    phone_region: str = Field(
        default_of(PiiPolicy, "phone_region"), description="Region for numbers without +prefix."
    )
    max_drop_share: float = Field(
        DEFAULT_MAX_DROP_SHARE,
        description="The shard's version fails its contract (and is not published) when the "
        "filters drop more than this share of a non-trivial shard.",
    )
    filter_overrides: dict[str, float] = Field(
        default_factory=dict,
        description='Override one filter parameter, e.g. {"gopher_quality.min_doc_words": 30}.',
    )

    def policy(self) -> CleaningPolicy:
        filters = filters_for(self.parity)
        for name in ("gopher_repetition", "gopher_quality", "c4", "fineweb_quality"):
            if not getattr(self, name):
                filters = dataclasses.replace(filters, **{name: None})
        try:
            filters = with_overrides(filters, self.filter_overrides)
        except ValueError as error:
            raise dg.Failure(str(error)) from error
        languages = tuple(self.languages) if self.languages is not None else None
        pii = PiiPolicy(self.redact_emails, self.redact_phones, self.redact_ips, self.phone_region)
        return CleaningPolicy(self.min_language_score, languages, filters, pii, self.max_toxicity)


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
    contract = dataclasses.replace(CONTRACT, max_drop_share=config.max_drop_share)
    publication = Publication(context, lake, contract, CODE_VERSION, partition=shard)
    with publication.write() as out:
        report = clean_shard(
            lake.iter_rows("raw_documents", partitions=[shard]),
            language_identifier.identify,
            policy,
            out.table("documents", CLEANED_DOCUMENTS_SCHEMA),
            out.table("dropped", DROPPED_SCHEMA),
            out.table("signals", SIGNALS_SCHEMA),
        )
    yield from publication.results(
        catalog_rows(lake, "raw_documents", partitions=[shard]),
        {
            "dropped_by_rule": dg.MetadataValue.json(dict(report.rules.most_common())),
            "languages": dg.MetadataValue.json(dict(report.languages.most_common())),
            "pii_replaced": dg.MetadataValue.json(dict(report.pii)),
            "toxicity_histogram": dg.MetadataValue.md(toxicity_histogram(report.toxicity_bins)),
        },
    )


class SignatureConfig(dg.Config):
    """FineWeb's MinHash defaults: word 5-grams, 14 bands x 8 rows = 112 hashes. duplicate_clusters
    must be run with the same values (it refuses signatures made with others)."""

    ngram: int = default_of(MinHashConfig, "ngram")
    bands: int = default_of(MinHashConfig, "bands")
    rows: int = default_of(MinHashConfig, "rows")
    seed: int = default_of(MinHashConfig, "seed")

    def minhash(self) -> MinHashConfig:
        return MinHashConfig(self.ngram, self.bands, self.rows, seed=self.seed)


@dg.asset(
    partitions_def=crawl_shards,
    group_name="cleaned",
    code_version=SIGNATURES_CODE_VERSION,
    deps=["cleaned_documents"],
    check_specs=check_specs("minhash_signatures"),
    kinds={"parquet"},
)
def minhash_signatures(
    context: dg.AssetExecutionContext, config: SignatureConfig, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """MinHash signatures, band keys (sorted per band) and exact hashes of one shard's cleaned
    documents: datatrove's signature step, so a shard is signed once, never per corpus run."""
    shard = context.partition_key
    publication = Publication(context, lake, SIGNATURES_CONTRACT, SIGNATURES_CODE_VERSION, shard)
    with publication.write({"config": config.minhash().signing_key()}) as out:
        report = sign_into(lake, shard, MinHasher(config.minhash()), out)
    yield from publication.results(
        catalog_rows(lake, "cleaned_documents", partitions=[shard]),
        {"signed": report.signed, "too_short_to_sign": report.documents - report.signed},
    )


SIGNATURES_CONTRACT = Contract(
    columns=("doc_id", "shard", "cleaned_version", "content_hash", "config", "signature"),
    not_null=("doc_id", "shard", "content_hash", "config"),
)


class DedupConfig(dg.Config):
    """Thresholds of the reduce; ngram/bands/rows/seed must equal minhash_signatures' own."""

    near_duplicates: bool = Field(
        default_of(DedupPolicy, "near_duplicates"),
        description="MinHash near duplicates besides exact ones.",
    )
    ngram: int = default_of(MinHashConfig, "ngram")
    bands: int = default_of(MinHashConfig, "bands")
    rows: int = default_of(MinHashConfig, "rows")
    threshold: float = Field(
        default_of(MinHashConfig, "threshold"), description="Jaccard a pair must reach."
    )
    seed: int = default_of(MinHashConfig, "seed")
    confirm: Literal["exact", "estimate", "none"] = Field(
        default_of(MinHashConfig, "confirm"),
        description="'exact' Jaccard check of LSH pairs (texts of candidates only), 'estimate' "
        "on the stored signatures, or 'none' (datatrove parity).",
    )
    keep: KeepPolicy = Field(
        default_of(DedupPolicy, "keep"), description="Which copy of a duplicate survives."
    )
    memory_limit_mb: int = Field(
        default_of(DedupPolicy, "memory_limit_mb"),
        description="DuckDB memory limit of the bucket and cluster steps; beyond it they spill.",
    )
    threads: int = Field(default_of(DedupPolicy, "threads"), description="DuckDB threads.")
    max_band_rows: int = Field(
        default_of(DedupPolicy, "max_band_rows"),
        description="Rows one bucket step groups; a larger band is split into hash ranges.",
    )
    temp_directory: str | None = Field(
        None, description="Where DuckDB spills; None = the system's temporary folder."
    )

    def policy(self) -> DedupPolicy:
        minhash = MinHashConfig(
            self.ngram, self.bands, self.rows, self.threshold, self.seed, self.confirm
        )
        return DedupPolicy(
            minhash,
            self.near_duplicates,
            self.keep,
            self.memory_limit_mb,
            self.threads,
            self.max_band_rows,
            self.temp_directory,
        )


@dg.asset(
    group_name="cleaned",
    code_version=DEDUP_CODE_VERSION,
    deps=["cleaned_documents", "minhash_signatures"],
    check_specs=check_specs("duplicate_clusters"),
    kinds={"parquet", "duckdb"},
)
def duplicate_clusters(
    context: dg.AssetExecutionContext, config: DedupConfig, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Exact and near duplicates across all shards: which copy is kept, which removed and why.

    Reads the stored band keys of every shard (old shards are never signed again), buckets them
    band by band out of core in DuckDB and clusters the pairs only."""
    policy = config.policy()
    publication = Publication(context, lake, DEDUP_CONTRACT, DEDUP_CODE_VERSION)
    # signatures are checked against these cleaned versions (their cleaned_version column)
    upstream = lake.versions_of(["cleaned_documents"])
    try:
        with publication.write({"upstream": upstream, "policy": policy.key()}) as out:
            result = deduplicate(lake, policy, out)
    except StaleSignaturesError as error:
        raise dg.Failure(str(error)) from error
    yield from publication.results(
        catalog_rows(lake, "cleaned_documents"),
        {
            "clusters": result.clusters,
            "exact_pairs": result.exact_pairs,
            "near_duplicate_pairs": result.near_pairs,
            "candidate_pairs": result.candidate_pairs,
            "texts_compared": result.texts_compared,
            "checks_reused": result.checks_reused,
            "shards": result.shards,
        },
        kept=result.kept,
    )


DEDUP_CONTRACT = Contract(
    columns=("doc_id", "cluster_id", "kept_doc_id", "similarity", "method", "is_kept"),
    ranges={"similarity": (0.0, 1.0)},
    max_drop_share=None,  # a crawl that is mostly copies is a finding, not a broken stage
)


class EvalSetConfig(dg.Config):
    """One evaluation set: a local JSONL or Parquet file of items."""

    name: str = Field(description="Recorded in each removal's rule, decontam:<name>.")
    path: str = Field(description="A local .jsonl or .parquet file.")
    id_field: str = Field("id", description="The item id field; absent = the item's position.")
    text_fields: list[str] = Field(
        default_factory=lambda: ["prompt", "answer"],
        description="Fields whose text is indexed (lists, such as choices, element by element).",
    )


class DecontamConfig(dg.Config):
    """Which eval sets to decontaminate against: `eval_sets`, plus every .jsonl/.parquet file in
    `eval_dir` (FOUNDRY_EVAL_DIR) as a set named after the file, with the default fields."""

    eval_sets: list[EvalSetConfig] = Field(default_factory=list)
    eval_dir: str = Field(
        default_factory=lambda: os.environ.get(EVAL_DIR_ENV, ""),
        description="A folder of eval sets (FOUNDRY_EVAL_DIR); '' = none.",
    )
    ngram: int = Field(default_of(DecontamPolicy, "ngram"), ge=1, description="Words per n-gram.")
    workers: int = Field(
        default_of(DecontamPolicy, "workers"), ge=0, description="Processes; 0 = one per CPU."
    )

    def policy(self) -> DecontamPolicy:
        sets = [EvalSet(s.name, s.path, s.id_field, tuple(s.text_fields)) for s in self.eval_sets]
        if self.eval_dir:
            sets += eval_sets_in(Path(self.eval_dir))
        return DecontamPolicy(tuple(sets), self.ngram, self.workers)


def eval_sets_fingerprint(op_config: dict) -> str | None:
    """The index version these settings ask for now (None: an eval set cannot be read)."""
    try:
        return index_fingerprint(DecontamConfig(**op_config).policy())
    except (EvalSetError, OSError):
        return None


@dg.asset(
    group_name="cleaned",
    code_version=DECONTAM_CODE_VERSION,
    deps=["cleaned_documents", "duplicate_clusters"],
    check_specs=check_specs("decontamination"),
    kinds={"parquet", "duckdb"},
)
def decontamination(
    context: dg.AssetExecutionContext, config: DecontamConfig, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Documents that share a word n-gram (13 by default) with an evaluation set are removed,
    each with the eval set, the item and the n-gram that matched (GPT-3, dolma, DCLM)."""
    try:
        policy = config.policy()
        publication = Publication(context, lake, DECONTAM_CONTRACT, DECONTAM_CODE_VERSION)
        root = Path(lake.home) / "decontamination"
        with publication.write({"eval_sets": [s.name for s in policy.eval_sets]}) as out:
            result = decontaminate(lake, policy, root, out)
    except EvalSetError as error:
        raise dg.Failure(str(error)) from error
    summary = result.index.summary
    yield from publication.results(
        catalog_rows(lake, "cleaned_documents")
        - catalog_rows(lake, "duplicate_clusters", "dropped"),
        {
            "eval_sets": dg.MetadataValue.json({s.name: s.path for s in policy.eval_sets}),
            "ngram": policy.ngram,
            "input_fingerprint": result.index.fingerprint,
            "eval_items": summary.items,
            "eval_ngrams": summary.ngrams,
            "items_too_short": dg.MetadataValue.json(summary.too_short),
            "removed_per_set": dg.MetadataValue.json(result.removed),
        },
    )


DECONTAM_CONTRACT = Contract(
    columns=("doc_id", "shard"),
    not_null=("doc_id", "shard"),
    max_drop_share=0.5,  # half a crawl overlapping benchmarks is a misconfigured eval set
)
