"""Load-balancer provider: tenant Service -> parent Service (+ EndpointSlices). Imports kube/ only."""
