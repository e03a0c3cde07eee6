"""The folder (or fsspec URL) that crawl shards arrive in; one shard becomes one partition."""

from __future__ import annotations

import posixpath

import fsspec
from dagster import ConfigurableResource
from pydantic import Field

from resources.settings import crawl_dir

SHARD_SUFFIXES = (
    ".warc",
    ".warc.gz",
    ".wet",
    ".wet.gz",
    ".jsonl",
    ".jsonl.gz",
    ".json.gz",
    ".parquet",
)


class CrawlSource(ConfigurableResource):
    """Lists shards and resolves a partition key back to the file it names."""

    location: str = Field(
        default_factory=crawl_dir,
        description="Local folder or fsspec URL of crawl shards (FOUNDRY_CRAWL_DIR).",
    )

    def list_shards(self) -> list[str]:
        """Shard keys are file names relative to the location, sorted so runs are repeatable."""
        fs, root = fsspec.core.url_to_fs(self.location)
        if not fs.exists(root):
            raise FileNotFoundError(
                f"Crawl location {self.location} does not exist: set FOUNDRY_CRAWL_DIR "
                "to a folder of WARC/WET/JSONL/Parquet shards."
            )
        keys = []
        for path in fs.find(root):
            rel = posixpath.relpath(path, root.rstrip("/"))
            name = posixpath.basename(rel)
            if not name.startswith(".") and name.lower().endswith(SHARD_SUFFIXES):
                keys.append(rel)
        return sorted(keys)

    def path_for(self, shard: str) -> str:
        if shard.startswith("/") or ".." in shard.split("/"):
            raise ValueError(f"shard key {shard!r} would leave the crawl location")
        return self.location.rstrip("/") + "/" + shard
