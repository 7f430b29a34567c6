"""The gRPC server: endpoint parsing, one interceptor that logs every call (secrets stripped) and maps
domain errors to status codes, and a per-volume guard against concurrent operations."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from csi._proto import csi_pb2_grpc
from csi.errors import Busy, DriverError, status_for
from kube.errors import scrub

log = logging.getLogger(__name__)

STRIPPED = "***stripped***"
DETAILS_LIMIT = 1024
LOGGED_REQUEST_LIMIT = 4096
SECRET_FIELDS = frozenset({"secrets"})


def strip_secrets(message: Message) -> dict[str, Any]:
    """The request as a dict for logging, with every `secrets` map replaced (CSI marks them csi_secret)."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (STRIPPED if k in SECRET_FIELDS else walk(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return dict(walk(MessageToDict(message, preserving_proto_field_name=True)))


def short(error: BaseException) -> str:
    """An error for a status message: errors echo IDs and paths, and a huge one in the trailers would make gRPC
    drop the answer (RESOURCE_EXHAUSTED on the client) instead of carrying it."""
    return scrub(str(error), DETAILS_LIMIT)


def logged(request: Message) -> str:
    """The request for a log line: secrets stripped, cut to a readable size."""
    return scrub(str(strip_secrets(request)), LOGGED_REQUEST_LIMIT)


class VolumeGuard:
    """At most one operation per volume at a time; a second one gets ABORTED and the sidecar retries."""

    def __init__(self) -> None:
        self._busy: set[str] = set()

    @contextlib.contextmanager
    def hold(self, *keys: str) -> Iterator[None]:
        taken = [k for k in keys if k]
        for key in taken:
            if key in self._busy:
                raise Busy(f"an operation on {key} is already in progress")
        self._busy.update(taken)
        try:
            yield
        finally:
            self._busy.difference_update(taken)


Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class LoggingInterceptor(grpc.aio.ServerInterceptor):
    """Logs each call once, where it is handled, and turns exceptions into gRPC statuses via one table."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        inner: Behaviour = handler.unary_unary

        async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                response = await inner(request, context)
            except DriverError as error:
                code = status_for(error)
                log.info(
                    "%s -> %s: %s", method, code.name, short(error), extra={"fields": {"request": logged(request)}}
                )
                await context.abort(code, short(error))
            except grpc.aio.AbortError:
                raise
            except Exception as error:  # every other failure still becomes a status, never a dropped stream
                code = status_for(error)
                log.warning(
                    "%s -> %s: %s", method, code.name, short(error), extra={"fields": {"request": logged(request)}}
                )
                await context.abort(code, f"{type(error).__name__}: {short(error)}")
            if log.isEnabledFor(logging.DEBUG):  # serialising every request on the hot path costs real time
                log.debug(
                    "%s -> OK in %.1fms",
                    method,
                    (time.perf_counter() - started) * 1000,
                    extra={"fields": {"request": logged(request)}},
                )
            return response

        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def listen_address(endpoint: str) -> str:
    """kubevirt-csi-driver's `--endpoint` (unix:/path, unix:///path, tcp://host:port) as a gRPC address."""
    if endpoint.startswith("unix:"):
        path = "/" + endpoint.removeprefix("unix:").lstrip("/")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).unlink(missing_ok=True)  # a socket left by a previous process would refuse the bind
        return f"unix://{path}"
    if endpoint.startswith("tcp://"):
        return endpoint.removeprefix("tcp://")
    if endpoint.startswith("tcp:"):
        return endpoint.removeprefix("tcp:")
    raise ValueError(f"unsupported endpoint {endpoint!r}: use unix:/path or tcp://host:port")


async def start_server(
    endpoint: str,
    identity: csi_pb2_grpc.IdentityServicer,
    controller: csi_pb2_grpc.ControllerServicer | None,
    node: csi_pb2_grpc.NodeServicer | None,
) -> tuple[grpc.aio.Server, int]:
    """Serve the given services on `endpoint`; returns the server and the bound TCP port (0 for unix)."""
    server = grpc.aio.server(interceptors=[LoggingInterceptor()])
    csi_pb2_grpc.add_IdentityServicer_to_server(identity, server)
    if controller is not None:
        csi_pb2_grpc.add_ControllerServicer_to_server(controller, server)
    if node is not None:
        csi_pb2_grpc.add_NodeServicer_to_server(node, server)
    port = server.add_insecure_port(listen_address(endpoint))
    await server.start()
    return server, port
