"""The pipeline's stages in order: the one table that jobs, schedules, the audit report, the
dataset card and the mixture's manifest read, so the order is written down once.

A stage is a package under `assets/`; its assets run in the order listed. Per-shard assets are
partitioned by crawl shard and form the ingest job; the rest see the whole corpus.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str  # the package under assets/ and the Dagster asset group
    assets: tuple[str, ...]
    per_shard: tuple[str, ...] = ()  # assets partitioned by crawl shard (the ingest job)
    drops: tuple[str, ...] = ()  # assets whose `dropped` table says why documents left here


STAGES: tuple[Stage, ...] = (
    Stage("raw", ("raw_documents",), per_shard=("raw_documents",), drops=("raw_documents",)),
    Stage(
        "cleaned",
        ("cleaned_documents", "minhash_signatures", "duplicate_clusters", "decontamination"),
        per_shard=("cleaned_documents", "minhash_signatures"),
        drops=("cleaned_documents", "duplicate_clusters", "decontamination"),
    ),
    Stage("rephrased", ("rephrased_documents",), drops=("rephrased_documents",)),
    Stage(
        "clustered",
        ("document_embeddings", "clusters"),
        per_shard=("document_embeddings",),
        drops=("clusters",),
    ),
    Stage(
        "scored",
        (
            "quality_classifier",
            "preselect_classifier",
            "llm_ratings",
            "rating_scorer",
            "dataman_ratings",
            "dataman_heads",
            "quality_scores",
        ),
    ),
    Stage(
        "mixed",
        ("token_counts", "training_mixture"),
        per_shard=("token_counts",),
        drops=("training_mixture",),
    ),
)

ASSET_NAMES: tuple[str, ...] = tuple(a for stage in STAGES for a in stage.assets)
SHARD_ASSET_NAMES: tuple[str, ...] = tuple(a for stage in STAGES for a in stage.per_shard)
CORPUS_ASSET_NAMES: tuple[str, ...] = tuple(a for a in ASSET_NAMES if a not in SHARD_ASSET_NAMES)
STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)


def stage_of(asset: str) -> Stage:
    for stage in STAGES:
        if asset in stage.assets:
            return stage
    raise KeyError(f"{asset!r} is in no stage; known assets: {', '.join(ASSET_NAMES)}")


def assets_before(asset: str) -> tuple[str, ...]:
    """Every asset earlier in the pipeline than `asset`, in order."""
    return ASSET_NAMES[: ASSET_NAMES.index(asset)]


def drop_tables(before: str | None = None) -> tuple[tuple[str, str], ...]:
    """(stage, asset) of every `dropped` table in pipeline order, of the assets before `before`."""
    earlier = assets_before(before) if before else ASSET_NAMES
    return tuple((stage.name, a) for stage in STAGES for a in stage.drops if a in earlier)
