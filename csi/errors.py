"""Domain errors of the driver and the one table that maps them (and API errors) to gRPC status codes."""

from __future__ import annotations

import grpc

from csi.ids import InvalidID
from kube import errors as api


class DriverError(Exception):
    """Base of the errors the driver raises on purpose; the message goes to the caller as is."""


class InvalidArgument(DriverError):
    pass


class VolumeNotFound(DriverError):
    pass


class AlreadyExistsIncompatible(DriverError):
    """Same name, different parameters or size."""


class FailedPrecondition(DriverError):
    pass


class OperationPending(DriverError):
    """Waiting on KubeVirt or CDI; the sidecar retries (we never block minutes inside an RPC)."""


class Busy(DriverError):
    """Another operation on the same volume is in flight."""


class InvalidToken(DriverError):
    """A paging token we did not hand out (the spec says ABORTED)."""


class OutOfRange(DriverError):
    pass


class ResourceExhausted(DriverError):
    pass


class Unimplemented(DriverError):
    pass


# First match wins, walking the exception's MRO; anything unknown is INTERNAL.
STATUS_FOR: dict[type[BaseException], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    InvalidID: grpc.StatusCode.NOT_FOUND,
    VolumeNotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExistsIncompatible: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    OperationPending: grpc.StatusCode.UNAVAILABLE,
    Busy: grpc.StatusCode.ABORTED,
    InvalidToken: grpc.StatusCode.ABORTED,
    OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
    api.NotFound: grpc.StatusCode.NOT_FOUND,
    api.Conflict: grpc.StatusCode.ABORTED,
    api.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    api.Invalid: grpc.StatusCode.INVALID_ARGUMENT,
    api.Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    api.Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    api.TooManyRequests: grpc.StatusCode.RESOURCE_EXHAUSTED,
    api.ServerTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
    api.ConnectionFailed: grpc.StatusCode.UNAVAILABLE,
    api.ServerError: grpc.StatusCode.UNAVAILABLE,
    TimeoutError: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_for(error: BaseException) -> grpc.StatusCode:
    for kind in type(error).__mro__:
        if kind in STATUS_FOR:
            return STATUS_FOR[kind]
    return grpc.StatusCode.INTERNAL
