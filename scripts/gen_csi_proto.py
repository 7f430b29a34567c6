"""Generate the CSI gRPC stubs from csi.proto of the pinned spec module into csi/_proto/ (git-ignored).

The proto is fetched through the Go module proxy (`go mod download`), so no copy of it lives in this repo.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from e2e.binaries import CSI_SPEC_VERSION, go_mod_download, log  # noqa: E402

OUT = REPO / "csi" / "_proto"
STAMP = OUT / "VERSION"


def main() -> None:
    if STAMP.exists() and STAMP.read_text().strip() == CSI_SPEC_VERSION and (OUT / "csi_pb2_grpc.py").exists():
        return
    from grpc_tools import protoc  # dev dependency; imported late so the check above needs nothing

    log(f"generating CSI stubs from github.com/container-storage-interface/spec {CSI_SPEC_VERSION}")
    module = go_mod_download("github.com/container-storage-interface/spec", CSI_SPEC_VERSION)
    proto = Path(module["Dir"]) / "csi.proto"
    with tempfile.TemporaryDirectory() as tmp:
        # Lay the proto out at csi/_proto/ so generated imports read `from csi._proto import csi_pb2`.
        src = Path(tmp) / "csi" / "_proto"
        src.mkdir(parents=True)
        shutil.copyfile(proto, src / "csi.proto")
        gen = Path(tmp) / "out"
        gen.mkdir()
        include = Path(protoc.__file__).parent / "_proto"
        args = [
            "protoc",
            f"-I{tmp}",
            f"-I{include}",
            f"--python_out={gen}",
            f"--pyi_out={gen}",
            f"--grpc_python_out={gen}",
            "csi/_proto/csi.proto",
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed on csi.proto")
        shutil.rmtree(OUT, ignore_errors=True)
        shutil.copytree(gen / "csi" / "_proto", OUT)
    (OUT / "__init__.py").write_text('"""Generated from the CSI spec; do not edit."""\n')
    STAMP.write_text(CSI_SPEC_VERSION + "\n")


if __name__ == "__main__":
    main()
