"""The CSI driver: identity, controller and node services over grpc.aio. Imports kube/ only."""
