# Pinned inputs of tests/cluster/build_kfp.sh beyond the wrapper module's go.mod/go.sum, which pins
# github.com/kubeflow/pipelines at 2.14.3 (pseudo-version of commit fc3214d4b4d3), the served `api`
# and `kubernetes_platform` modules whose generated packages are replaced, and Argo.
# (Sourced by build_kfp.sh.)
KFP_VERSION=2.14.3
# The PyPI wheels of the same release embed the .proto descriptors the Go code is generated from.
KFP_PIPELINE_SPEC_WHEEL_SHA256=47a0239ea8cb982679081f9e80c3dfa5e6dec013ea2dd8f467ad4e9b52f438b3
KFP_KUBERNETES_WHEEL_SHA256=5468ca98be248a922f4cfb764189a5a919135e2a30f2bc03f37f4a75bdca4e0c
# The protoc-gen-go upstream generated 2.14.3's Go code with.
PROTOC_GEN_GO=v1.36.6
