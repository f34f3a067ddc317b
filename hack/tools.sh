#!/usr/bin/env bash
# Builds the binaries tests and `make run` need into bin/: kube-apiserver, etcd, Dex and OpenTofu
# from the pinned Go modules under hack/tools/, plus controller-gen and kustomize. A binary is
# rebuilt only when its pinned module (go.mod/go.sum) changes (Dex also when its version flag
# does); the pins live in hack/tools/*/go.mod and hack/tools/versions.env.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
mkdir -p "$bin"
# shellcheck source=tools/versions.env
source "$root/hack/tools/versions.env"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

# build NAME MODULE_DIR PACKAGE MINUTES [env...]; with STAMP_SALT set, the stamp also covers it
# (the flags a build depends on beyond its module).
build() {
  local name=$1 dir=$2 pkg=$3 minutes=$4; shift 4
  local want; want=$({ cat "$root/hack/tools/$dir/go.mod" "$root/hack/tools/$dir/go.sum"; printf '%s' "${STAMP_SALT:-}"; } | sha256sum | cut -c1-16)
  if [[ -x "$bin/$name" && -f "$bin/.$name.stamp" && "$(cat "$bin/.$name.stamp")" == "$want" ]]; then
    return 0
  fi
  echo ">> building $name from hack/tools/$dir (first run only; takes about $minutes minutes on 2 cores)"
  local start=$SECONDS
  (cd "$root/hack/tools/$dir" && env "$@" go build -trimpath -o "$bin/$name" "$pkg")
  echo "$want" > "$bin/.$name.stamp"
  echo ">> built $name in $((SECONDS - start))s"
}

# dex_release RELEASE MINUTES: Dex RELEASE from hack/tools/dex-RELEASE into bin/dex-RELEASE (the pinned
# DEX_VERSION from hack/tools/dex into bin/dex), with GetVersion saying RELEASE instead of DEV.
# test/dexmatrix runs each; docs/compatibility.md lists them (a test checks the three agree).
dex_release() {
  local rel=$1 minutes=$2 name=dex-$1
  [[ $rel == "$DEX_VERSION" ]] && name=dex
  STAMP_SALT="-X main.version=$rel" build "$name" "$name" github.com/dexidp/dex/cmd/dex "$minutes" \
    CGO_ENABLED=1 GOFLAGS="-mod=mod -ldflags=-X=main.version=$rel"
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
    # The older releases the matrix runs (test/dexmatrix): about 3.5 minutes more on a cold run,
    # measured after bin/dex, whose build cache they share (docs/compatibility.md).
    dex_release v2.45.1 2.5
    dex_release v2.39.1 1
    dex_release v2.41.1 0.5
    dex_release v2.43.1 1
    dex_release v2.44.0 1
    build kube-apiserver kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver 6
    # Like OpenTofu's release builds: static, and dev=no drops the "-dev" suffix of the version.
    build tofu tofu github.com/opentofu/opentofu/cmd/tofu 7 CGO_ENABLED=0 \
      GOFLAGS="-mod=mod -ldflags=-X=github.com/opentofu/opentofu/version.dev=no" ;;
  lint)
    install golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION" ;;
  *) echo "usage: $0 [all|codegen|lint]" >&2; exit 2 ;;
esac
