"""The code location for a Kubernetes deployment: the same assets, jobs, schedule and sensors as
`orchestration.definitions`, with every step in its own Kubernetes Job (dagster-k8s).

Chosen by the user deployment's `--module-name deploy.k8s_definitions` (deploy/k8s/values.yaml).
Settings come from the environment the Helm values give the pods:

* `FOUNDRY_LAKE_URL` (s3://bucket/prefix) and the standard AWS variables: the lake on object
  storage; `FOUNDRY_HOME` on a shared volume holds the DuckDB catalog.
* `FOUNDRY_VLLM_ENDPOINTS` (comma-separated base URLs of `vllm serve` replicas), with
  `FOUNDRY_VLLM_MODEL` (local copy of the model's tokenizer) and `FOUNDRY_VLLM_SERVED_NAME`:
  rewriting over HTTP. Without endpoints the rewrite step runs vLLM in its own pod and asks
  Kubernetes for a GPU (deploy/k8s/executor.yaml, `per_step_k8s_config`).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster_k8s import k8s_job_executor

from orchestration.definitions import defs as local_defs
from resources.rewriter import VLLMRewriter

EXECUTOR_YAML = Path(__file__).with_name("k8s") / "executor.yaml"
REWRITE_STEP = "rephrased_documents"
ENDPOINTS_ENV = "FOUNDRY_VLLM_ENDPOINTS"


def vllm_endpoints() -> list[str]:
    return [url.strip() for url in os.environ.get(ENDPOINTS_ENV, "").split(",") if url.strip()]


def executor_config(endpoints: list[str] | None = None) -> dict[str, Any]:
    """deploy/k8s/executor.yaml; the rewrite step's GPU request is dropped when rewriting goes
    to vLLM servers, whose own pods hold the GPUs."""
    config = yaml.safe_load(EXECUTOR_YAML.read_text())
    if endpoints if endpoints is not None else vllm_endpoints():
        config = copy.deepcopy(config)
        config.get("per_step_k8s_config", {}).pop(REWRITE_STEP, None)
    return config


def rewriter() -> VLLMRewriter:
    endpoints = vllm_endpoints()
    if not endpoints:
        return local_defs.resources["rewriter"]
    return VLLMRewriter(
        backend="http",
        endpoints=endpoints,
        model=os.environ.get("FOUNDRY_VLLM_MODEL", ""),
        served_model_name=os.environ.get("FOUNDRY_VLLM_SERVED_NAME", "rewriter"),
    )


def build_definitions() -> dg.Definitions:
    """Every job of the local definitions, with the Kubernetes executor instead of the
    multiprocess one; schedules and sensors re-pointed at those jobs."""
    executor = k8s_job_executor.configured(executor_config(), name="foundry_k8s_executor")
    jobs = {job.name: _with_executor(job, executor) for job in local_defs.jobs}
    schedules = [s.with_updated_job(jobs[s.job_name]) for s in local_defs.schedules]
    sensors = [
        s.with_updated_jobs([jobs[j.name] for j in s.jobs]) if s.has_jobs else s
        for s in local_defs.sensors
    ]
    return dg.Definitions(
        assets=local_defs.assets,
        asset_checks=local_defs.asset_checks,
        jobs=list(jobs.values()),
        schedules=schedules,
        sensors=sensors,
        resources={**local_defs.resources, "rewriter": rewriter()},
    )


def _with_executor(job: Any, executor: dg.ExecutorDefinition) -> Any:
    """The same asset job (name, selection, partitions, tags, hooks) on another executor."""
    return dg.define_asset_job(
        name=job.name,
        selection=job.selection,
        config=job.config,
        description=job.description,
        tags=job.tags,
        run_tags=job.run_tags,
        metadata=job.metadata,
        partitions_def=job.partitions_def,
        executor_def=executor,
        hooks=job.hooks,
        op_retry_policy=job.op_retry_policy,
    )


defs = build_definitions()
