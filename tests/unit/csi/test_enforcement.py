"""The storage-class enforcement file (kubevirt-csi-driver's format): bad files are one line naming flag and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from csi.config import ConfigError, load_enforcement


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "enforcement.yaml"
    path.write_text(
        "allowAll: false\nallowList: [linstor]\nstorageSnapshotMapping:\n"
        "  - {storageClasses: [linstor], volumeSnapshotClasses: [linstor-snap]}\n"
    )
    enforcement = load_enforcement(str(path))
    assert enforcement.allows("linstor") and not enforcement.allows("premium")
    assert enforcement.snapshot_class_for("linstor") == "linstor-snap"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("allowAll: false\nalowDefault: true\n", "unknown key 'alowDefault'"),
        ("allowAll: maybe\n", "allowAll: Input should be a valid boolean"),
        ("allowList: {a: b}\n", "allowList: Input should be a valid list"),
        ("storageSnapshotMapping: [{storageClasses: a}]\n", "storageSnapshotMapping.0.storageClasses: Input should"),
        ("- allowAll\n", "expected a mapping at the top level, got list"),
        ("allowList: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_bad_file_names_the_flag_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "enforcement.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"^{re.escape(f'--storage-class-enforcement {path}: ')}") as error:
        load_enforcement(str(path))
    assert message in str(error.value)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"enforcement\.yaml: No such file or directory$"):
        load_enforcement(str(tmp_path / "enforcement.yaml"))
