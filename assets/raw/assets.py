"""Dagster definition of the raw stage: one crawl shard in, documents and quarantine out."""

from collections.abc import Iterator

import dagster as dg

from assets.contracts import Contract, check_specs
from assets.documents import DROPPED_SCHEMA
from assets.partitions import crawl_shards
from assets.publishing import Publication
from assets.raw.ingest import ingest_shard
from assets.raw.schema import RAW_DOCUMENTS_SCHEMA
from resources.crawl import CrawlSource
from resources.lake import Lake

CODE_VERSION = "raw-1"
CONTRACT = Contract(
    columns=tuple(RAW_DOCUMENTS_SCHEMA.names),
    not_null=("doc_id", "source_file", "source_offset", "text"),
    ranges={"source_offset": (0, None)},
)


@dg.asset(
    partitions_def=crawl_shards,
    group_name="raw",
    code_version=CODE_VERSION,
    check_specs=check_specs("raw_documents"),
    kinds={"parquet", "duckdb"},
)
def raw_documents(
    context: dg.AssetExecutionContext, lake: Lake, crawl: CrawlSource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Records of one crawl shard with their main text, URL, fetch time, file and byte offset."""
    shard = context.partition_key
    source = crawl.fingerprint(shard)  # taken before reading: a file changed mid-run stays stale
    publication = Publication(context, lake, CONTRACT, CODE_VERSION, partition=shard)
    with publication.write() as out:
        counts = ingest_shard(
            crawl.path_for(shard),
            shard,
            out.table("documents", RAW_DOCUMENTS_SCHEMA),
            out.table("dropped", DROPPED_SCHEMA),
        )
    yield from publication.results(
        counts.records,
        {
            "source_fingerprint": source,
            "quarantine_reasons": dg.MetadataValue.json(counts.reasons),
            "records_per_s": round(counts.records / max(counts.seconds, 1e-9), 1),
        },
    )
