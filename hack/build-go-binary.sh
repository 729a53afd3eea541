#!/usr/bin/env bash
# Build one Go binary pinned by a small go.mod under hack/ and install it into .cache/bin.
#
#   hack/build-go-binary.sh MODULE_DIR PACKAGE [BINARY_NAME]
#   e.g. hack/build-go-binary.sh hack/k8s k8s.io/kubernetes/cmd/kube-apiserver
#
# Skips the build when .cache/bin/NAME exists and .cache/bin/NAME.version matches the pinned
# module version and the Go version (so a bump of either rebuilds). GOCACHE/GOMODCACHE stay at
# Go's defaults: the machine's shared caches make a rebuild in a fresh clone cheap.
# Builds with -p 2 (the machine has 2 cores shared with others) and prints the time taken.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: $0 MODULE_DIR PACKAGE [BINARY_NAME]" >&2
    exit 2
fi
repo_root="$(cd "$(dirname "$0")/.." && pwd)"
module_dir="$(cd "$repo_root/$1" 2>/dev/null && pwd)" || { echo "no such module dir: $1" >&2; exit 2; }
package="$2"
name="${3:-$(basename "$package")}"
bin_dir="$repo_root/.cache/bin"
mkdir -p "$bin_dir"

cd "$module_dir"
# The module that provides the package, and its pinned version from go.mod.
module_path="$(go list -f '{{.Module.Path}}' "$package")"
module_version="$(go list -m -f '{{.Version}}' "$module_path")"
want="$module_path $module_version $(go env GOVERSION)"

if [[ -x "$bin_dir/$name" && -f "$bin_dir/$name.version" && "$(cat "$bin_dir/$name.version")" == "$want" ]]; then
    echo "$name: up to date ($want)"
    exit 0
fi

ldflags="-s -w"
if [[ "$module_path" == "k8s.io/kubernetes" ]]; then
    # Without these the binaries report v0.0.0-master; clients and logs should see the pin.
    minor="$(echo "$module_version" | cut -d. -f2)"
    ldflags+=" -X k8s.io/component-base/version.gitVersion=$module_version"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
    ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor"
    ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
fi

echo "$name: building $package ($want) ..."
start=$(date +%s)
# Build to a temp name and move, so an interrupted build never leaves a half binary behind.
CGO_ENABLED=0 go build -p 2 -trimpath -ldflags "$ldflags" -o "$bin_dir/$name.tmp" "$package"
mv "$bin_dir/$name.tmp" "$bin_dir/$name"
echo "$want" > "$bin_dir/$name.version"
echo "$name: built in $(( $(date +%s) - start ))s"
