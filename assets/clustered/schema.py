"""Arrow schemas and contracts of the clustered stage's tables."""

from __future__ import annotations

import pyarrow as pa

from assets.contracts import Contract

ASSIGNMENT_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("cluster_id", pa.int32()),
        ("distance", pa.float32()),
        ("origin", pa.string()),
    ]
)
SUMMARY_SCHEMA = pa.schema(
    [
        ("cluster_id", pa.int32()),
        ("label", pa.string()),
        ("size", pa.int64()),
        ("synthetic_share", pa.float64()),
        ("representative_doc_ids", pa.list_(pa.string())),
    ]
)
CENTROID_SCHEMA = pa.schema(
    [
        ("cluster_id", pa.int32()),
        ("centroid", pa.list_(pa.float32())),
        ("reference_mean_distance", pa.float64()),
        ("fitted_on", pa.int64()),
    ]
)
FITTED_SCHEMA = pa.schema([("doc_id", pa.string())])

CLUSTER_CONTRACT = Contract(
    columns=tuple(ASSIGNMENT_SCHEMA.names),
    not_null=("doc_id", "cluster_id"),
    ranges={"distance": (-1e-3, 2.0), "cluster_id": (0, None)},
    allowed={"origin": ("organic", "synthetic")},
)
EMBED_CONTRACT = Contract(columns=("doc_id", "text_hash", "model_id", "embedding"))
