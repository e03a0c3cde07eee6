"""What a rebuild must redo, read from Dagster's materialization records.

An asset (or one shard partition of it) is stale when it was never materialized, when its
definition's code_version differs from the one its latest materialization recorded, when an
upstream asset was materialized after it, or when an upstream asset is itself stale; a shard's
raw_documents is also stale when its crawl file no longer matches what the run read.

Why not Dagster's own stale status (`RunRequest(stale_assets_only=True)`, the UI's "Materialize
stale"): it resolves whole assets, not one partition; it stops tracking data versions past 100
upstream partitions, which every corpus-wide stage exceeds; and a root asset's logical data
version only hashes its code version, so it cannot see a rewritten crawl file.

An upstream counts from its latest *committed* version: a version its checks rejected never
became current, and a run that reused the current version wrote none, so what downstream reads
did not change and nothing downstream is stale for them.
An asset whose own latest version was rejected is not retried until its inputs, code or config
change (the same input would be rejected again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

from resources.crawl import ShardFile

if TYPE_CHECKING:
    from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph

SOURCE_FINGERPRINT = "source_fingerprint"
COMMITTED = "version_committed"
"""Metadata key of `Publication.results`: False when the checks rejected the staged version or
the run reused the current one."""
"""Metadata key under which raw_documents records `CrawlSource.fingerprint` of the file it read."""

CODE_VERSION_TAG = "dagster/code_version"
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class Materialized:
    """The facts of one latest materialization that staleness depends on."""

    storage_id: int
    timestamp: float
    code_version: str | None
    source_fingerprint: str | None
    run_id: str | None = None
    committed: bool = True

    @classmethod
    def from_record(cls, record: dg.EventLogRecord) -> Materialized:
        event = record.asset_materialization
        assert event is not None, record
        fingerprint = event.metadata.get(SOURCE_FINGERPRINT)
        committed = event.metadata.get(COMMITTED, True)
        return cls(
            record.storage_id,
            record.timestamp,
            (event.tags or {}).get(CODE_VERSION_TAG),
            getattr(fingerprint, "value", fingerprint),
            record.run_id,
            getattr(committed, "value", committed) is not False,
        )


@dataclass(frozen=True)
class Rebuild:
    """Assets to rematerialize (upstream first) and why the first of them is stale."""

    assets: tuple[dg.AssetKey, ...]
    reason: str


def latest_by_partition(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: Iterable[str]
) -> dict[str, Materialized]:
    """Latest materialization per partition: a few indexed queries, however many shards."""
    wanted = set(partitions)
    ids = instance.get_latest_storage_id_by_partition(
        key, dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    by_id = {storage_id: partition for partition, storage_id in ids.items() if partition in wanted}
    found: dict[str, Materialized] = {}
    storage_ids = sorted(by_id)
    for start in range(0, len(storage_ids), 500):
        chunk = storage_ids[start : start + 500]
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, storage_ids=chunk), limit=len(chunk)
        ).records
        found.update({by_id[r.storage_id]: Materialized.from_record(r) for r in records})
    return found


def committed_id(
    instance: dg.DagsterInstance, key: dg.AssetKey, latest: Materialized, partition: str | None
) -> int:
    """Storage id of the latest materialization whose version was committed (0: none): the
    latest one, unless its checks rejected it; then the walk goes back, 100 records a query."""
    if latest.committed:
        return latest.storage_id
    partitions = [partition] if partition is not None else None
    where = dg.AssetRecordsFilter(key, partitions, before_storage_id=latest.storage_id)
    cursor = None
    while True:
        page = instance.fetch_materializations(where, limit=100, cursor=cursor)
        for record in page.records:
            if Materialized.from_record(record).committed:
                return record.storage_id
        if not page.has_more:
            return 0
        cursor = page.cursor


def stale_shards(
    instance: dg.DagsterInstance,
    asset_graph: BaseAssetGraph,
    shard_assets: Sequence[dg.AssetKey],
    files: Mapping[str, ShardFile],
) -> dict[str, Rebuild]:
    """Shard partitions whose per-shard assets must be rematerialized, with the stale subset.

    The most upstream of `shard_assets` is the one that reads the crawl file.
    """
    shard_assets = in_dependency_order(asset_graph, shard_assets)
    history = {key: latest_by_partition(instance, key, files) for key in shard_assets}
    work: dict[str, Rebuild] = {}
    for shard, file in files.items():
        stale: dict[dg.AssetKey, str] = {}
        for key in shard_assets:
            done = history[key].get(shard)
            parents = {
                p: committed_id(instance, p, history[p][shard], shard) if shard in history[p] else 0
                for p in asset_graph.get(key).parent_keys
                if p in history
            }
            reason = _why_stale(asset_graph, key, done, parents, stale)
            if reason is None and key == shard_assets[0]:
                reason = _source_changed(file, done)  # type: ignore[arg-type]
            if reason is not None:
                stale[key] = reason
        if stale:
            first = next(iter(stale))
            work[shard] = Rebuild(tuple(stale), f"{first.to_user_string()}: {stale[first]}")
    return work


def stale_assets(
    instance: dg.DagsterInstance, asset_graph: BaseAssetGraph, keys: Sequence[dg.AssetKey]
) -> dict[dg.AssetKey, str]:
    """Unpartitioned assets to rebuild (upstream first), each with the reason it is stale.

    A partitioned upstream counts as materialized after it when any of its partitions was.
    """
    keys = in_dependency_order(asset_graph, keys)
    parents = {key: asset_graph.get(key).parent_keys for key in keys}
    latest = {
        record.asset_entry.asset_key: Materialized.from_record(
            record.asset_entry.last_materialization_record
        )
        for record in instance.get_asset_records(list(set(keys).union(*parents.values())))
        if record.asset_entry.last_materialization_record is not None
    }
    stale: dict[dg.AssetKey, str] = {}
    for key in keys:
        done = latest.get(key)
        upstream = {
            p: committed_id(instance, p, latest[p], None) if p in latest else 0
            for p in parents[key]
        }
        reason = _why_stale(asset_graph, key, done, upstream, stale)
        if reason is not None:
            stale[key] = reason
    return stale


def in_dependency_order(
    asset_graph: BaseAssetGraph, keys: Iterable[dg.AssetKey]
) -> list[dg.AssetKey]:
    """Upstream first, whatever order the job lists its assets in."""
    wanted = set(keys)
    return [key for key in asset_graph.toposorted_asset_keys if key in wanted]


def with_downstream(
    asset_graph: BaseAssetGraph, keys: Sequence[dg.AssetKey], stale: Mapping[dg.AssetKey, str]
) -> dict[dg.AssetKey, str]:
    """`stale` and every one of `keys` downstream of it, upstream first."""
    out: dict[dg.AssetKey, str] = {}
    for key in in_dependency_order(asset_graph, keys):
        parent = next((p for p in asset_graph.get(key).parent_keys if p in out), None)
        if key in stale:
            out[key] = stale[key]
        elif parent is not None:
            out[key] = f"{parent.to_user_string()} is rebuilt"
    return out


def in_flight(instance: dg.DagsterInstance, job_name: str) -> list[dg.DagsterRun]:
    """Queued or running runs of the job: their work must not be requested twice."""
    return list(instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT)))


def _why_stale(
    asset_graph: BaseAssetGraph,
    key: dg.AssetKey,
    done: Materialized | None,
    upstream: Mapping[dg.AssetKey, int],
    stale: Mapping[dg.AssetKey, str],
) -> str | None:
    """`upstream`: each parent's latest storage id (0: never); `stale`: what is decided so far."""
    if done is None:
        return "never materialized"
    current = asset_graph.get(key).code_version
    if current is not None and current != done.code_version:
        return f"code version {done.code_version} -> {current}"
    if rebuilt := [p for p in upstream if p in stale]:
        return f"upstream {rebuilt[0].to_user_string()} is being rebuilt"
    if newer := [p for p, storage_id in upstream.items() if storage_id > done.storage_id]:
        return f"upstream {newer[0].to_user_string()} materialized after it"
    return None


def _source_changed(file: ShardFile, done: Materialized) -> str | None:
    if done.source_fingerprint is not None:
        if done.source_fingerprint != file.fingerprint:
            return f"crawl file changed ({done.source_fingerprint} -> {file.fingerprint})"
        return None
    # Materializations that predate the fingerprint: modified after the run read it.
    if file.modified is None or file.modified > done.timestamp:
        return "crawl file modified after its last ingest"
    return None


def op_config_changed(
    instance: dg.DagsterInstance, run_ids: Mapping[str, str | None], run_config: dict | None
) -> set[str]:
    """Assets (by name) whose latest materialization ran with another op config than
    ``run_config`` asks for: staleness proper does not see configuration, a user who passes a
    new config expects it applied. ``run_ids``: asset name -> run of its latest materialization."""
    return config_changed(run_op_configs(instance, run_ids.values()), run_ids, run_config)


def run_op_configs(instance: dg.DagsterInstance, run_ids: Iterable[str | None]) -> dict[str, dict]:
    """run id -> its op config, fetched 500 runs per query."""
    ids = sorted({r for r in run_ids if r})
    configs: dict[str, dict] = {}
    for start in range(0, len(ids), 500):
        runs = instance.get_runs(filters=dg.RunsFilter(run_ids=ids[start : start + 500]))
        configs.update({run.run_id: run.run_config.get("ops", {}) for run in runs})
    return configs


def config_changed(
    configs: Mapping[str, dict], run_ids: Mapping[str, str | None], run_config: dict | None
) -> set[str]:
    """`op_config_changed` over op configs fetched already (`run_op_configs`)."""
    wanted = (run_config or {}).get("ops", {})
    return {
        name
        for name, run_id in run_ids.items()
        if run_id is None or _op_config(configs.get(run_id, {}), name) != _op_config(wanted, name)
    }


def _op_config(ops: Mapping, name: str) -> dict:
    return (ops.get(name) or {}).get("config") or {}


def outside_inputs_changed(
    instance: dg.DagsterInstance,
    run_config: dict | None,
    fingerprints: Mapping[str, Callable] | None = None,
) -> set[str]:
    """Assets that read files outside the lake and the crawl (eval sets): stale when the
    fingerprint their latest materialization recorded (metadata `input_fingerprint`) differs
    from what `fingerprints[name](op_config)` gives now (None: cannot be read, so re-run it and
    let its error say why)."""
    if fingerprints is None:
        from assets.cleaned.assets import eval_sets_fingerprint

        fingerprints = {"decontamination": eval_sets_fingerprint}
    wanted = (run_config or {}).get("ops", {})
    changed = set()
    for name, fingerprint in fingerprints.items():
        event = instance.get_latest_materialization_event(dg.AssetKey(name))
        if event is None or event.asset_materialization is None:
            continue
        metadata = event.asset_materialization.metadata
        if "input_fingerprint" not in metadata:  # reported without one: nothing to compare
            continue
        recorded = metadata["input_fingerprint"]
        if getattr(recorded, "value", recorded) != fingerprint(_op_config(wanted, name)):
            changed.add(name)
    return changed
