"""`python -m benchmarks NAME [OPTIONS]` prints one JSON line of figures and ratios; a benchmark
that takes options (`memory --gb 0.25`) parses them with its own `parse_args`."""

from __future__ import annotations

import importlib
import json
import sys

BENCHMARKS = {
    "pipeline": "benchmarks.pipeline",
    "filters": "benchmarks.bench_filters",
    "minhash": "benchmarks.bench_minhash",
    "memory": "benchmarks.bench_memory",
    "embeddings": "benchmarks.bench_embeddings",
    "rewrite": "benchmarks.bench_rewrite",
    "extraction": "benchmarks.bench_extraction",
    "scale": "benchmarks.bench_scale",
    "http_rewrite": "benchmarks.bench_http_rewrite",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m benchmarks {{{','.join(BENCHMARKS)}}} [OPTIONS]", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[argv[0]])
    parse = getattr(module, "parse_args", None)
    if parse is None and len(argv) > 1:
        print(f"{argv[0]} takes no options", file=sys.stderr)
        return 2
    figures = module.run(**parse(argv[1:])) if parse is not None else module.run()
    print(json.dumps({"benchmark": argv[0], **figures}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
