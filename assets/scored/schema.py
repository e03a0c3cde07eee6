"""Tables of the scored stage and the contracts the next stages may rely on."""

import polars as pl
import pyarrow as pa

from assets.contracts import Contract
from assets.measures import N_BUCKETS
from assets.scored.dataman import CRITERION_COLUMNS, DOMAIN_COLUMN, DOMAINS, load_prompts
from assets.scored.ratings import DIMENSIONS

# quality_classifier: its training examples with out-of-fold scores, and one row of metrics
CLASSIFIER_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("source", pa.string()),
        ("language", pa.string()),
        ("label", pa.int8()),
        ("heldout_score", pa.float64()),
        ("n_chars", pa.int64()),
    ]
)
CLASSIFIER_METRICS_SCHEMA = pa.schema(
    [
        ("fingerprint", pa.string()),
        ("trained", pa.bool_()),
        ("auc", pa.float64()),
        ("auc_ci_low", pa.float64()),  # seeded bootstrap interval of the held-out AUC
        ("auc_ci_high", pa.float64()),
        ("auc_reason", pa.string()),
        ("n_reference", pa.int64()),
        ("n_crawl", pa.int64()),
        ("folds", pa.int64()),
        ("reference", pa.string()),
        ("spec", pa.string()),
    ]
)
CLASSIFIER_CONTRACT = Contract(
    columns=tuple(CLASSIFIER_SCHEMA.names),
    not_null=("doc_id", "label", "source"),
    ranges={"heldout_score": (0.0, 1.0), "label": (0, 1)},
    allowed={"source": ("reference", "crawl")},
)

# preselect_classifier: the sample with its losses under each rung, strength, label, held-out
PRESELECT_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("language", pa.string()),
        ("losses", pa.list_(pa.float64())),  # mean token loss under each rung, smallest first
        ("agreement", pa.float64()),  # share of rung pairs ordered as their abilities
        ("correlation", pa.float64()),
        ("label", pa.int8()),  # 1 predictive, 0 not, -1 neither (not trained on)
        ("heldout_score", pa.float64()),
    ]
)
PRESELECT_METRICS_SCHEMA = pa.schema(
    [
        ("fingerprint", pa.string()),
        ("trained", pa.bool_()),
        ("auc", pa.float64()),
        ("auc_ci_low", pa.float64()),
        ("auc_ci_high", pa.float64()),
        ("auc_reason", pa.string()),
        ("n_positive", pa.int64()),
        ("n_negative", pa.int64()),
        ("folds", pa.int64()),
        ("ladder", pa.string()),  # rungs: training tokens and ability (JSON)
        ("spec", pa.string()),
    ]
)
PRESELECT_CONTRACT = Contract(
    columns=tuple(PRESELECT_SCHEMA.names),
    not_null=("doc_id", "label"),
    ranges={"heldout_score": (0.0, 1.0), "agreement": (0.0, 1.0), "label": (-1, 1)},
)

# llm_ratings: every answer (long), and the sample with one column per dimension (wide)
RATINGS_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("dimension", pa.string()),
        ("score", pa.int8()),
        ("parse_error", pa.string()),
        ("answer", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("finish_reason", pa.string()),
        ("model", pa.string()),
        ("prompt_hash", pa.string()),
        ("max_text_tokens", pa.int64()),
        ("sampling", pa.string()),
    ]
)
RATED_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("origin", pa.string()),
        ("language", pa.string()),
        *((dim, pa.int8()) for dim in DIMENSIONS),
        ("n_parsed", pa.int32()),
    ]
)
RATED_CONTRACT = Contract(
    columns=tuple(RATED_SCHEMA.names),
    not_null=("doc_id", "n_parsed"),
    ranges={dim: (0, 5) for dim in DIMENSIONS},
)

# rating_scorer: ratings and out-of-fold predictions per rated document, metrics per dimension
SCORER_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        *((f"{dim}_rating", pa.float64()) for dim in DIMENSIONS),
        *((f"{dim}_heldout", pa.float64()) for dim in DIMENSIONS),
    ]
)
SCORER_METRICS_SCHEMA = pa.schema(
    [
        ("fingerprint", pa.string()),
        ("dimension", pa.string()),
        ("n_rated", pa.int64()),
        ("spearman", pa.float64()),
        ("spearman_ci_low", pa.float64()),  # seeded bootstrap interval of held-out Spearman
        ("spearman_ci_high", pa.float64()),
        ("spearman_reason", pa.string()),
        ("alpha", pa.float64()),
        ("embedding_model", pa.string()),
    ]
)
SCORER_CONTRACT = Contract(columns=tuple(SCORER_SCHEMA.names))

# dataman_ratings: every answer (long; `label` holds a domain), the sample wide (dm_* columns)
DATAMAN_ANSWERS_SCHEMA = RATINGS_SCHEMA.insert(3, pa.field("label", pa.string()))
SCALE = (load_prompts().low, load_prompts().high)
DATAMAN_RATED_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("origin", pa.string()),
        ("language", pa.string()),
        *((name, pa.int8()) for name in CRITERION_COLUMNS),
        (DOMAIN_COLUMN, pa.string()),
        ("n_parsed", pa.int32()),
    ]
)
DATAMAN_RATED_CONTRACT = Contract(
    columns=tuple(DATAMAN_RATED_SCHEMA.names),
    not_null=("doc_id", "n_parsed"),
    ranges={name: SCALE for name in CRITERION_COLUMNS},
    allowed={DOMAIN_COLUMN: DOMAINS},
)

# dataman_heads: per labelled document its ratings, domain and out-of-fold predictions
DATAMAN_HEADS_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        *((f"{name}_rating", pa.float64()) for name in CRITERION_COLUMNS),
        *((f"{name}_heldout", pa.float64()) for name in CRITERION_COLUMNS),
        (f"{DOMAIN_COLUMN}_label", pa.string()),
        (f"{DOMAIN_COLUMN}_heldout", pa.string()),
    ]
)
DATAMAN_METRICS_SCHEMA = pa.schema(
    [
        *SCORER_METRICS_SCHEMA,
        ("accuracy", pa.float64()),  # the domain row: out-of-fold accuracy and its interval
        ("accuracy_ci_low", pa.float64()),
        ("accuracy_ci_high", pa.float64()),
        ("macro_f1", pa.float64()),
        ("majority_share", pa.float64()),  # the constant baseline the interval must clear
        ("n_domains", pa.int64()),
    ]
)
DATAMAN_HEADS_CONTRACT = Contract(
    columns=tuple(DATAMAN_HEADS_SCHEMA.names),
    not_null=("doc_id",),
    allowed={f"{DOMAIN_COLUMN}_label": DOMAINS, f"{DOMAIN_COLUMN}_heldout": DOMAINS},
)

# quality_scores: the mixed stage reads doc_id, origin, quality_score and quality_bucket (and
# dm_domain when it mixes by DataMan domain)
SCORE_COLUMNS = (
    "classifier_score",
    "preselect_score",
    *DIMENSIONS,
    *CRITERION_COLUMNS,
    "toxicity",
)
SCORES_CONTRACT = Contract(
    columns=("doc_id", "origin", "quality_score", "quality_bucket", *SCORE_COLUMNS),
    not_null=("doc_id", "origin", "quality_score", "quality_bucket"),
    ranges={
        "quality_bucket": (0, N_BUCKETS - 1),
        "classifier_score": (0.0, 1.0),
        "preselect_score": (0.0, 1.0),
        "toxicity": (0.0, 1.0),
        **{dim: (0.0, 5.0) for dim in DIMENSIONS},
        **{name: SCALE for name in CRITERION_COLUMNS},
    },
    allowed={"origin": ("organic", "synthetic"), DOMAIN_COLUMN: DOMAINS},
)


def frame(rows: list[dict], schema: pa.Schema) -> pl.DataFrame:
    """Rows typed by an Arrow schema (also when there are none)."""
    return pl.from_arrow(pa.Table.from_pylist(rows, schema=schema))


def _features_schema() -> pa.Schema:
    from assets.scored.signals import REDPAJAMA_SIGNALS, TEXT_SIGNALS

    signals = [s for s in REDPAJAMA_SIGNALS if s not in TEXT_SIGNALS]
    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("origin", pa.string()),
            ("language", pa.string()),
            *(
                (name, pa.float64())
                for name in ("classifier_score", "preselect_score", *DIMENSIONS, *CRITERION_COLUMNS)
            ),
            (DOMAIN_COLUMN, pa.string()),
            *((name, pa.float64()) for name in (*TEXT_SIGNALS, *signals, "toxicity")),
            ("toxicity_source", pa.string()),
        ]
    )


# quality_scores' per-document inputs (what one shard's map produces), then the scores table
FEATURES_SCHEMA = _features_schema()
SCORES_SCHEMA = pa.schema(
    [
        *FEATURES_SCHEMA,
        ("quality_score", pa.float64()),
        ("quality_bucket", pa.int32()),
        ("cluster_id", pa.int32()),
    ]
)


def conform(data: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """A frame as a table of exactly `schema` (missing columns as nulls, types cast)."""
    table = data.to_arrow()
    arrays = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)
