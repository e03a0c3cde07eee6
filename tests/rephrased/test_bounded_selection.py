"""Rewrite selection reads bounded data: the budget is a bottom-k of ids (pages when a token
budget skips some), the quality band is placed by a bounded sample, never a sort of every row."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl

from assets.rephrased.select import BandScale, Selection, in_id_order, select_todo

GOOD = "The system installs packages. It checks their signatures. Updates are applied daily. "
BAD = "menu\nmenu\nlogin\n#\n#"


def _docs(n: int, seed: str = "") -> pl.DataFrame:
    ids = [hashlib.blake2b(f"{seed}{i}".encode(), digest_size=12).hexdigest() for i in range(n)]
    texts = [GOOD * (1 + i % 7) if i % 3 else BAD for i in range(n)]
    languages = ["en" if i % 10 else "de" for i in range(n)]
    return pl.DataFrame({"doc_id": ids, "text": texts, "language": languages})


def _shards(tmp_path: Path, n: int, shards: int = 4) -> pl.LazyFrame:
    docs = _docs(n)
    paths = []
    for i in range(shards):
        path = tmp_path / f"shard-{i}.parquet"
        docs.filter(pl.int_range(pl.len()) % shards == i).write_parquet(path, row_group_size=500)
        paths.append(str(path))
    return pl.scan_parquet(paths)


def _no_done() -> pl.LazyFrame:
    return pl.LazyFrame(schema={"doc_id": pl.String})


def test_pages_walk_every_row_once_in_id_order(tmp_path: Path) -> None:
    pool = _shards(tmp_path, 3000)
    walked = [row["doc_id"] for row in in_id_order(pool, first_page=16)]
    assert walked == sorted(pool.collect()["doc_id"])


def test_the_budget_takes_the_smallest_ids_not_done_in_the_allowed_languages(tmp_path) -> None:
    pool = _shards(tmp_path, 3000)
    english = sorted(pool.filter(pl.col("language") == "en").collect()["doc_id"])
    done = pl.LazyFrame({"doc_id": english[:5] + english[7:9]})
    chosen = select_todo(None, pool, Selection(max_new_documents=6), done, len)
    assert [row["doc_id"] for row in chosen] == english[5:7] + english[9:13]
    again = select_todo(None, pool, Selection(max_new_documents=6), done, len)
    assert [row["doc_id"] for row in again] == english[5:7] + english[9:13], "deterministic"


def test_a_token_budget_skips_long_documents_and_pages_on(tmp_path: Path) -> None:
    pool = _shards(tmp_path, 3000)
    count = lambda text: len(text.split())  # noqa: E731
    selection = Selection(max_new_documents=40, max_source_tokens_total=600)
    chosen = list(select_todo(None, pool, selection, _no_done(), count))
    english = pool.filter(pl.col("language") == "en").collect().sort("doc_id")
    spent, expected = 0, []
    for row in english.iter_rows(named=True):  # the same rule over a full sort
        if len(expected) == 40:
            break
        if spent + count(row["text"]) <= 600:
            spent += count(row["text"])
            expected.append(row["doc_id"])
    assert [row["doc_id"] for row in chosen] == expected
    assert sum(count(row["text"]) for row in chosen) <= 600


def test_score_band_is_placed_by_a_bounded_sample(tmp_path: Path) -> None:
    pool = _shards(tmp_path, 3000)
    english = pool.filter(pl.col("language") == "en")
    scale = BandScale.fit(english, 200)
    assert len(scale.scores) == 200, "only the sample is scored to set the percentiles"
    selection = Selection(policy="score_band", score_band=(0.0, 0.3), max_new_documents=20)
    low = list(select_todo(None, pool, selection, _no_done(), len))
    assert len(low) == 20 and all(row["text"] == BAD for row in low)
    selection = Selection(policy="score_band", score_band=(0.7, 1.0), max_new_documents=20)
    high = list(select_todo(None, pool, selection, _no_done(), len))
    assert len(high) == 20 and all(row["text"] != BAD for row in high)
    ids = [row["doc_id"] for row in high]
    assert ids == sorted(ids), "in id order"


CHILD = textwrap.dedent(
    """
    import sys
    import polars as pl
    from assets.rephrased.select import Selection, select_todo

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024

    def growth(step):
        # reset the peak RSS (Linux clear_refs 5), so imports' peak cannot hide the step's
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status("VmRSS")
        step()
        return round(status("VmHWM") - before)

    pool = pl.scan_parquet(sys.argv[1] + "/*.parquet")
    done = pl.LazyFrame(schema={"doc_id": pl.String})
    chosen = []
    bounded = growth(
        lambda: chosen.extend(select_todo(None, pool, Selection(max_new_documents=8), done, len))
    )
    assert len(chosen) == 8
    full = growth(lambda: pool.select("doc_id", "text", "language").sort("doc_id").collect())
    print(bounded, full)
    """
)


def test_selection_memory_does_not_grow_with_the_pool(tmp_path: Path) -> None:
    """A pool of ~240 MB of text: selecting 8 holds read buffers; sorting the pool holds it all."""
    text = "word " * 800  # 4 kB
    for shard in range(6):
        ids = [
            hashlib.blake2b(f"{shard}-{i}".encode(), digest_size=12).hexdigest()
            for i in range(10_000)
        ]
        frame = pl.DataFrame({"doc_id": ids, "text": [text + i for i in ids], "language": "en"})
        frame.write_parquet(tmp_path / f"{shard}.parquet", row_group_size=2000)
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    bounded, full = int(out[0]), int(out[1])
    print(f"selection +{bounded} MB, full sort +{full} MB")
    assert full > 200, f"the full sort should hold the pool ({full} MB): the probe is blind"
    # polars' read buffers grow with its thread count, not with the pool (~30 MB on 2 cores)
    assert bounded < 0.25 * full, f"selection grew the process by {bounded} MB of {full}"
