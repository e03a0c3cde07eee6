"""The Kubernetes deployment (deploy/) is checked against dagster-k8s's own config schema and
against the code it deploys: same jobs, a GPU for the rewrite step, vLLM endpoints for HTTP."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

k8s = pytest.importorskip("dagster_k8s")

from deploy import k8s_definitions  # noqa: E402
from orchestration.definitions import defs as local_defs  # noqa: E402

DEPLOY = Path(k8s_definitions.__file__).parent / "k8s"
GPU = "nvidia.com/gpu"


@dg.op
def _noop() -> None:
    pass


@dg.job(executor_def=k8s.k8s_job_executor)
def _probe() -> None:
    _noop()


def _validate_executor(config: dict) -> None:
    result = dg.validate_run_config(_probe, {"execution": {"config": config}})
    assert result["execution"]["k8s"]["max_concurrent"] == config["max_concurrent"]


def test_executor_config_passes_dagster_k8s_schema() -> None:
    config = k8s_definitions.executor_config(endpoints=[])
    _validate_executor(config)
    with pytest.raises(dg.DagsterInvalidConfigError):
        _validate_executor({**config, "per_step_k8s_confg": {}})  # a typo is caught


def test_rewrite_step_gets_a_gpu_unless_vllm_servers_do_the_work() -> None:
    engine = k8s_definitions.executor_config(endpoints=[])
    step = engine["per_step_k8s_config"][k8s_definitions.REWRITE_STEP]
    assert step["container_config"]["resources"]["limits"][GPU] == 1
    corpus = local_defs.resolve_job_def("build_corpus")
    assert corpus.graph.has_node_named(k8s_definitions.REWRITE_STEP), "the key names a real step"
    http = k8s_definitions.executor_config(endpoints=["http://vllm-rewriter:8000"])
    assert k8s_definitions.REWRITE_STEP not in http["per_step_k8s_config"]
    _validate_executor(http)


def test_k8s_code_location_has_the_local_jobs_on_the_k8s_executor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FOUNDRY_VLLM_ENDPOINTS", "http://vllm-a:8000, http://vllm-b:8000")
    defs = k8s_definitions.build_definitions()
    dg.Definitions.validate_loadable(defs)
    local_jobs = {job.name: job for job in local_defs.jobs}
    for name, local in local_jobs.items():
        job = defs.resolve_job_def(name)
        assert job.executor_def.name == "foundry_k8s_executor"
        assert job.partitions_def == local.partitions_def
        assert set(job.graph.node_names()) == set(
            local_defs.resolve_job_def(name).graph.node_names()
        )
    assert {s.job_name for s in defs.schedules} <= set(local_jobs)
    rewriter = defs.resources["rewriter"]
    assert rewriter.backend == "http"
    assert rewriter.endpoints == ["http://vllm-a:8000", "http://vllm-b:8000"]
    assert rewriter.served_model_name == _vllm_arg("--served-model-name")


def _vllm_arg(flag: str) -> str:
    deployment = next(d for d in yaml.safe_load_all((DEPLOY / "vllm.yaml").read_text()))
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args[args.index(flag) + 1]


def test_vllm_servers_request_gpus_and_are_reachable_in_cluster_only() -> None:
    deployment, service = yaml.safe_load_all((DEPLOY / "vllm.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"][GPU] >= 1
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["targetPort"] == int(_vllm_arg("--port"))


def test_helm_values_deploy_this_code_location_privately() -> None:
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    assert values["dagsterWebserver"]["service"]["type"] == "ClusterIP"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == k8s_definitions.__name__
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    executor = yaml.safe_load((DEPLOY / "executor.yaml").read_text())
    mounts = {m["name"]: m["mountPath"] for m in executor["volume_mounts"]}
    assert {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]} == mounts
    assert values["postgresql"]["enabled"] is True
