"""The cloud-controller-manager: node and node-lifecycle controllers, and the service controller over lb/."""
