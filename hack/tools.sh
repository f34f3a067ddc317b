#!/usr/bin/env bash
# Builds the binaries tests and `make run` need into bin/: kube-apiserver, etcd, Dex and OpenTofu
# from the pinned Go modules under hack/tools/, plus controller-gen and kustomize. A binary is
# rebuilt only when its pinned module (go.mod/go.sum) changes; the pins live in hack/tools/*/go.mod
# and hack/tools/versions.env.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
mkdir -p "$bin"
# shellcheck source=tools/versions.env
source "$root/hack/tools/versions.env"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

# build NAME MODULE_DIR PACKAGE MINUTES [env...]
build() {
  local name=$1 dir=$2 pkg=$3 minutes=$4; shift 4
  local want; want=$(stamp_of "$root/hack/tools/$dir/go.mod" "$root/hack/tools/$dir/go.sum")
  if [[ -x "$bin/$name" && -f "$bin/.$name.stamp" && "$(cat "$bin/.$name.stamp")" == "$want" ]]; then
    return 0
  fi
  echo ">> building $name from hack/tools/$dir (first run only; takes about $minutes minutes on 2 cores)"
  local start=$SECONDS
  (cd "$root/hack/tools/$dir" && env "$@" go build -trimpath -o "$bin/$name" "$pkg")
  echo "$want" > "$bin/.$name.stamp"
  echo ">> built $name in $((SECONDS - start))s"
}

# install NAME MODULE@VERSION
install() {
  local name=$1 mod=$2 want=$3
  if [[ -x "$bin/$name" && -f "$bin/.$name.stamp" && "$(cat "$bin/.$name.stamp")" == "$want" ]]; then
    return 0
  fi
  echo ">> installing $name $want (first run only; about 1 minute, golangci-lint about 5)"
  GOBIN="$bin" go install "$mod@$want"
  echo "$want" > "$bin/.$name.stamp"
}

what=${1:-all}
case $what in
  codegen)
    install controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen "$CONTROLLER_GEN_VERSION"
    install kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION" ;;
  all)
    install controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen "$CONTROLLER_GEN_VERSION"
    install kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
    build etcd etcd . 1.5
    build dex dex github.com/dexidp/dex/cmd/dex 2.5 CGO_ENABLED=1
    build kube-apiserver kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver 6
    # Like OpenTofu's release builds: static, and dev=no drops the "-dev" suffix of the version.
    build tofu tofu github.com/opentofu/opentofu/cmd/tofu 7 CGO_ENABLED=0 \
      GOFLAGS="-mod=mod -ldflags=-X=github.com/opentofu/opentofu/version.dev=no" ;;
  lint)
    install golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION" ;;
  *) echo "usage: $0 [all|codegen|lint]" >&2; exit 2 ;;
esac
