#!/usr/bin/env bash
# Build the loopback control plane of tests/cluster from the Go module proxy, once per cache key:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler (k8s.io/kubernetes through the
#   wrapper module in kubernetes/), the KWOK controller and its default Stages, and a kubectl 1.32
#   (the one on PATH when it is 1.32, else built from the same wrapper); Seldon Core v1's operator
#   (wrapper module seldon/, our main.go over its controller and webhooks); and the CRDs the tests
#   install, read from the pinned modules: Seldon Core v1's SeldonDeployment (operator module) and
#   Argo's WorkflowTaskResult (what a run's executor writes).
# Output: ${KFKIT_CONTROLPLANE_CACHE:-$HOME/.cache/kfkit/controlplane}/<key>/{bin,share}; prints that
# folder on stdout as its last line. Exits at once when the folder is complete.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
source "$here/versions.sh"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-buildvcs=false -trimpath"

command -v go >/dev/null || { echo "build.sh: go not found on PATH (Go >= 1.26 builds KWOK $KWOK)" >&2; exit 1; }

# The key changes with anything that changes what is built: versions, wrapper modules, this script
# and the Go toolchain.
key="$( { cat "$here/versions.sh" "$here"/kubernetes/go.mod "$here"/kubernetes/go.sum "$here"/seldon/go.mod \
            "$here"/seldon/go.sum "$here"/seldon/main.go "$here/build.sh"; go version; } \
        | sha256sum | cut -c1-16)"
cache="${KFKIT_CONTROLPLANE_CACHE:-$HOME/.cache/kfkit/controlplane}"
out="$cache/$key"
mkdir -p "$cache"

if [[ -f "$out/complete" ]]; then
  echo "$out"
  exit 0
fi

exec 9>"$cache/.lock"
flock 9
if [[ -f "$out/complete" ]]; then  # built by another process while this one waited for the lock
  echo "$out"
  exit 0
fi

started=$(date +%s)
staging="$out.partial.$$"
rm -rf "$staging"
mkdir -p "$staging/bin" "$staging/share/kwok-stages"
trap 'rm -rf "$staging"' EXIT
log() { echo "build.sh: $*" >&2; }
# Where the module cache holds a module's files (downloaded if missing).
module_dir() { go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }
log "building the control plane into $out (load average: $(cut -d' ' -f1-3 /proc/loadavg))"

# /version would say v0.0.0-master without these (as upstream's hack/lib/version.sh sets them).
minor="$(echo "$K8S" | cut -d. -f2)"
version_flags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $pkg.gitVersion=$K8S -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

wrapper="$here/kubernetes"
log "kube-apiserver, kube-controller-manager, kube-scheduler $K8S"
nice -n 10 go build -C "$wrapper" -mod=readonly -ldflags "$version_flags" -o "$staging/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler
log "etcd $ETCD"
nice -n 10 go build -C "$wrapper" -mod=readonly -ldflags "-s -w" -o "$staging/bin/etcd" go.etcd.io/etcd/server/v3

# kubectl: kfkit's own commands (`kfkit manifests`) call the kubectl on PATH; reuse it when it is the
# same minor version as the server, so the tests run the kubectl users run.
path_kubectl="$(command -v kubectl || true)"
path_kubectl_version="$( [[ -n "$path_kubectl" ]] && "$path_kubectl" version --client 2>/dev/null | head -1 || true)"
if [[ "$path_kubectl_version" == "Client Version: v1.$minor."* ]]; then
  log "kubectl: reusing $path_kubectl ($path_kubectl_version)"
  ln -s "$path_kubectl" "$staging/bin/kubectl"
else
  log "kubectl $K8S"
  nice -n 10 go build -C "$wrapper" -mod=readonly -ldflags "$version_flags" -o "$staging/bin/kubectl" \
    k8s.io/kubernetes/cmd/kubectl
fi

log "kwok $KWOK"
GOBIN="$staging/bin" nice -n 10 go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK"
kwok_dir="$(module_dir "sigs.k8s.io/kwok@$KWOK")"
# The default Stages kwokctl gives its clusters: nodes initialised and heart-beating with a Lease,
# pods made Ready, Job pods completed, deleted pods released.
for stage in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  cp "$kwok_dir/kustomize/stage/$stage" "$staging/share/kwok-stages/"
done

log "Seldon Core operator $SELDON_OPERATOR (its controller and webhooks under seldon/main.go)"
nice -n 10 go build -C "$here/seldon" -mod=readonly -ldflags "-s -w" -o "$staging/bin/seldon-operator" .
seldon_dir="$(module_dir "github.com/seldonio/seldon-core/operator@$SELDON_OPERATOR")"
# What the operator's own install would create: its ConfigMap (storage initializer, servers), its
# ClusterRoles, and its Deployment (read for the environment the reconciler is configured by).
mkdir -p "$staging/share/seldon"
for file in manager/configmap.yaml manager/manager.yaml rbac/role.yaml rbac/role_sas.yaml; do
  cp "$seldon_dir/config/$file" "$staging/share/seldon/"
done

mkdir -p "$staging/share/crds"
# (kustomize warns that this kustomization uses deprecated fields: not ours to change, not shown.)
"$staging/bin/kubectl" kustomize "$seldon_dir/config/crd" 2> >(grep -v "^# Warning" >&2) > "$staging/share/crds/seldondeployments.yaml"
argo_dir="$(module_dir "github.com/argoproj/argo-workflows/v3@$ARGO")"
cp "$argo_dir/manifests/base/crds/minimal/argoproj.io_workflowtaskresults.yaml" "$staging/share/crds/"
chmod -R u+w "$staging/share"

cp "$here/versions.sh" "$staging/share/versions.sh"
echo "$(( $(date +%s) - started ))" > "$staging/build-seconds"
touch "$staging/complete"
rm -rf "$out"
mv "$staging" "$out"
trap - EXIT
log "built in $(cat "$out/build-seconds")s (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "$out"
