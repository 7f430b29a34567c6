"""Destroying watch history on purpose: compact one control plane's etcd up to its current revision."""

from __future__ import annotations

import base64
import json
import urllib.request

from e2e.cluster.controlplane import PlaneState


def compact_etcd(plane: PlaneState) -> int:
    """Compact through etcd's JSON gateway; a watch resuming from an older resourceVersion then gets 410 Gone
    (once the kube-apiserver's watch cache no longer holds it, e.g. after a restart)."""
    base = plane.etcd_url
    range_request = json.dumps({"key": base64.b64encode(b"/").decode()}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{base}/v3/kv/range", data=range_request)) as response:
        revision = int(json.load(response)["header"]["revision"])
    compact = json.dumps({"revision": str(revision), "physical": True}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{base}/v3/kv/compaction", data=compact)) as response:
        response.read()
    return revision
