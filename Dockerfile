# syntax=docker/dockerfile:1
# tenant-cloud images, both non-root by default:
#   controller (default target): the ccm and the CSI controller  -> ghcr.io/tenant-cloud/tenant-cloud
#   node: the CSI node plugin plus the filesystem tools it runs  -> ghcr.io/tenant-cloud/tenant-cloud-node
#
#   docker build -t ghcr.io/tenant-cloud/tenant-cloud:0.1.0 .
#   docker build --target node -t ghcr.io/tenant-cloud/tenant-cloud-node:0.1.0 .
#
# The node DaemonSet runs the plugin as root and privileged on purpose (mount, mkfs); nothing else does.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG GO_IMAGE=golang:1.26-bookworm

# csi.proto of the pinned CSI spec (CSI_SPEC_VERSION in e2e/binaries.py), from the Go module proxy, as the
# bootstrap fetches it; the generated stubs are never committed.
FROM ${GO_IMAGE} AS csi-spec
ARG CSI_SPEC_VERSION=v1.12.0
RUN go mod download github.com/container-storage-interface/spec@${CSI_SPEC_VERSION} \
 && cp "$(go env GOMODCACHE)/github.com/container-storage-interface/spec@${CSI_SPEC_VERSION}/csi.proto" /csi.proto

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY constraints.txt ./
# protoc lives in a throwaway environment: grpcio-tools never reaches the images.
RUN python -m venv /opt/protoc && /opt/protoc/bin/pip install -c constraints.txt grpcio-tools
COPY pyproject.toml README.md ./
COPY kube kube
COPY lb lb
COPY ccm ccm
COPY csi csi
COPY --from=csi-spec /csi.proto /proto/csi/_proto/csi.proto
RUN /opt/protoc/bin/python -m grpc_tools.protoc -I/proto \
      --python_out=. --pyi_out=. --grpc_python_out=. csi/_proto/csi.proto \
 && printf '"""Generated from the CSI spec; do not edit."""\n' > csi/_proto/__init__.py
# Dependencies at the versions CI tests (constraints.txt); bytecode compiled now, as the root filesystem is
# read-only at run time.
RUN python -m venv /opt/tenant-cloud \
 && /opt/tenant-cloud/bin/pip install -c constraints.txt . \
 && /opt/tenant-cloud/bin/python -m compileall -q /opt/tenant-cloud/lib

FROM ${PYTHON_IMAGE} AS runtime
COPY --from=build /opt/tenant-cloud /opt/tenant-cloud
ENV PATH=/opt/tenant-cloud/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
LABEL org.opencontainers.image.source="https://github.com/tenant-cloud/tenant-cloud" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532

FROM runtime AS node
USER root
# mkfs/fsck/resize (e2fsprogs, xfsprogs), lsblk/blkid/blockdev (util-linux), mount/umount (mount).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends e2fsprogs xfsprogs util-linux mount \
 && rm -rf /var/lib/apt/lists/*
USER 65532:65532
CMD ["tenant-cloud-csi", "--help"]

FROM runtime AS controller
CMD ["tenant-cloud-ccm", "--help"]
