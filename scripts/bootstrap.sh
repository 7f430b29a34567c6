#!/usr/bin/env bash
# Sets up everything from a fresh machine: virtualenv + deps, kube-apiserver/kubectl/etcd, CSI stubs.
# Idempotent and fast when warm: each step is skipped when its output is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

say() { printf '[bootstrap] %s\n' "$*" >&2; }

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "need Python >= 3.11 as $PYTHON"; exit 1
fi
command -v go >/dev/null || { say "need Go on PATH to build kube-apiserver and fetch the CSI spec"; exit 1; }

# Node-side CSI work runs real mkfs, mount and loop devices (Debian packages; only root can install them).
node_tools="mkfs.ext4 mkfs.xfs resize2fs xfs_growfs fsck.ext4 blkid lsblk losetup mount"
missing=$(for tool in $node_tools; do command -v "$tool" >/dev/null || echo "$tool"; done)
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing e2fsprogs xfsprogs util-linux mount (missing: $(echo $missing))"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq e2fsprogs xfsprogs util-linux mount >/dev/null
  else
    say "missing $(echo $missing): CSI node tests that need them will be skipped"
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when the dependency declaration changed.
stamp="$VENV/.deps-$(cat pyproject.toml constraints.txt 2>/dev/null | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  say "installing dependencies into $VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # The build backend's chatter (an editable-install notice) goes to a log; it is shown only if pip fails.
  if ! "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e '.[dev]' 2> "$VENV/pip-install.log"; then
    cat "$VENV/pip-install.log" >&2
    exit 1
  fi
  rm -f "$VENV"/.deps-* && touch "$stamp"
fi

# kube-apiserver, kubectl, kube-controller-manager, the CSI sidecars (pinned Go modules) and etcd (Debian), cached.
"$VENV/bin/python" -m e2e.binaries --print-env > "$VENV/binaries.env"
kubectl_path=$(sed -n 's/^TENANT_CLOUD_KUBECTL=//p' "$VENV/binaries.env")
ln -sf "$kubectl_path" "$VENV/bin/kubectl"

# CSI protobuf stubs from the pinned spec module; never committed.
"$VENV/bin/python" scripts/gen_csi_proto.py
say "ready: source $VENV/bin/activate"
