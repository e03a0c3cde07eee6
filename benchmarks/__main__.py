"""`python -m benchmarks NAME` prints one JSON line of figures and ratios."""

from __future__ import annotations

import importlib
import json
import sys

BENCHMARKS = {
    "pipeline": "benchmarks.pipeline",
    "filters": "benchmarks.bench_filters",
    "minhash": "benchmarks.bench_minhash",
    "embeddings": "benchmarks.bench_embeddings",
    "rewrite": "benchmarks.bench_rewrite",
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in BENCHMARKS:
        print(f"usage: python -m benchmarks {{{','.join(BENCHMARKS)}}}", file=sys.stderr)
        return 2
    figures = importlib.import_module(BENCHMARKS[argv[0]]).run()
    print(json.dumps({"benchmark": argv[0], **figures}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
