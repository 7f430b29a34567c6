"""Reading Kubernetes objects (plain JSON dicts) the way the storage simulators need it; pure helpers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kube.client import Object


def metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("name") or "")


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("namespace") or "")


def uid_of(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("uid") or "")


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return metadata(obj).get("annotations") or {}


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return metadata(obj).get("labels") or {}


def finalizers(obj: Mapping[str, Any]) -> list[str]:
    return list(metadata(obj).get("finalizers") or ())


def deleting(obj: Mapping[str, Any]) -> bool:
    return bool(metadata(obj).get("deletionTimestamp"))


def spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def key(namespace: str, name: str) -> str:
    """The informer store key: `namespace/name`."""
    return f"{namespace}/{name}"


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference marked controller, as metav1.GetControllerOf."""
    for ref in metadata(obj).get("ownerReferences") or ():
        if ref.get("controller"):
            return dict(ref)
    return None


def finalizers_patch(obj: Mapping[str, Any], wanted: Sequence[str]) -> Object:
    """A merge patch setting the finalizer list, conditional on the resourceVersion we decided on."""
    return {"metadata": {"finalizers": list(wanted), "resourceVersion": metadata(obj).get("resourceVersion")}}


def without(items: Sequence[str], *drop: str) -> list[str]:
    return [item for item in items if item not in drop]


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> datetime:
    return datetime.now(UTC)


def go_quote(text: str) -> str:
    """Go's %q of an ASCII string, for messages that quote errors the way the real controllers do."""
    return json.dumps(text)
