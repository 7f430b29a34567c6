#!/usr/bin/env bash
# Delete both kind clusters made by up.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"
kind="${KIND:-$(command -v kind || echo "$HOME/.cache/tenant-cloud/kind-$KIND_VERSION/bin/kind")}"
"$kind" delete cluster --name "$TENANT_KIND"
"$kind" delete cluster --name "$PARENT_KIND"
