"""Shared Kubernetes runtime: API client, informers, work queues, leader election, events, HTTP endpoints.

Knows nothing of KubeVirt, load balancers or CSI.
"""
