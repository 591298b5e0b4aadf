# Pinned versions of the control plane tests/cluster/build.sh builds (sourced by bash, read by Python).
K8S=v1.32.13
ETCD=v3.5.16
KWOK=v0.8.0
# CRDs only (not built): Seldon Core v1's operator module (kfkit's serving pins seldon-core 1.19.0)
# and Argo Workflows' (the version KFP 2.14's manifests kustomize; the WorkflowTaskResult CRD).
SELDON_OPERATOR=v1.19.0
ARGO=v3.6.7
