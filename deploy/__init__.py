"""Deployment of Corpus Foundry on a Kubernetes cluster (Dagster's Helm chart + k8s executor)."""
