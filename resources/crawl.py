"""The folder (or fsspec URL) that crawl shards arrive in; one shard becomes one partition."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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

# Content stamps that object stores keep per object; a local file has only its mtime.
_ETAG_FIELDS = ("ETag", "etag", "md5Hash", "md5")
_MTIME_FIELDS = ("mtime", "LastModified", "last_modified", "updated", "modified", "created")


@dataclass(frozen=True)
class ShardFile:
    """One crawl file as the filesystem lists it: enough to notice it was replaced or rewritten."""

    key: str
    size: int
    modified: float | None
    etag: str | None = None

    @property
    def fingerprint(self) -> str:
        """Size plus the store's content tag, else the modification time (as make and rsync do)."""
        return f"size={self.size};" + (
            f"etag={self.etag}" if self.etag else f"mtime={self.modified}"
        )

    @classmethod
    def from_info(cls, key: str, info: dict[str, Any]) -> ShardFile:
        etag = next((str(info[f]).strip('"') for f in _ETAG_FIELDS if info.get(f)), None)
        stamp = next((info[f] for f in _MTIME_FIELDS if info.get(f) is not None), None)
        return cls(key, int(info.get("size") or 0), _seconds(stamp), etag)


def _seconds(stamp: Any) -> float | None:
    if isinstance(stamp, datetime):
        return stamp.timestamp()
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return float(stamp) if isinstance(stamp, int | float) else None


class CrawlSource(ConfigurableResource):
    """Lists shards and resolves a partition key back to the file it names."""

    location: str = Field(
        default_factory=crawl_dir,
        description="Local folder or fsspec URL of crawl shards (FOUNDRY_CRAWL_DIR).",
    )

    def list_shards(self) -> list[str]:
        """Shard keys are file names relative to the location, sorted so runs are repeatable."""
        return sorted(self.files())

    def files(self) -> dict[str, ShardFile]:
        """Every shard with its size and change stamp, from one listing of the location."""
        fs, root = fsspec.core.url_to_fs(self.location)
        if not fs.exists(root):
            raise FileNotFoundError(
                f"Crawl location {self.location} does not exist: set FOUNDRY_CRAWL_DIR "
                "to a folder of WARC/WET/JSONL/Parquet shards."
            )
        found = {}
        for path, info in fs.find(root, detail=True).items():
            rel = posixpath.relpath(path, root.rstrip("/"))
            name = posixpath.basename(rel)
            if not name.startswith(".") and name.lower().endswith(SHARD_SUFFIXES):
                found[rel] = ShardFile.from_info(rel, info)
        return found

    def fingerprint(self, shard: str) -> str:
        """What raw_documents records of the file it read, so a changed file can be told apart."""
        fs, path = fsspec.core.url_to_fs(self.path_for(shard))
        return ShardFile.from_info(shard, fs.info(path)).fingerprint

    def path_for(self, shard: str) -> str:
        if shard.startswith("/") or ".." in shard.split("/"):
            raise ValueError(f"shard key {shard!r} would leave the crawl location")
        return self.location.rstrip("/") + "/" + shard
