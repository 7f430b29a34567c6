"""The Kubernetes Status bodies virt-api answers with (built like apimachinery's errors.New* helpers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KUBEVIRT_GROUP = "kubevirt.io"


@dataclass
class StatusError(Exception):
    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def body(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status


def _details(kind: str, name: str, group: str = KUBEVIRT_GROUP) -> dict[str, Any]:
    return {"name": name, "group": group, "kind": kind}


def not_found(kind: str, name: str) -> StatusError:
    """`kind` is virt-api's resource word: virtualmachine or virtualmachineinstance."""
    return StatusError(404, "NotFound", f'{kind}.{KUBEVIRT_GROUP} "{name}" not found', _details(kind, name))


def conflict(kind: str, name: str, cause: str) -> StatusError:
    message = f'Operation cannot be fulfilled on {kind}.{KUBEVIRT_GROUP} "{name}": {cause}'
    return StatusError(409, "Conflict", message, _details(kind, name))


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def unauthorized(message: str) -> StatusError:
    return StatusError(401, "Unauthorized", message)


def forbidden(resource: str, group: str, name: str, reason: str) -> StatusError:
    return StatusError(
        403, "Forbidden", f'{resource}.{group} "{name}" is forbidden: {reason}', _details(resource, name, group)
    )


def not_found_path(path: str) -> StatusError:
    return StatusError(404, "NotFound", f"the server could not find the requested resource ({path})")


def method_not_allowed(method: str) -> StatusError:
    return StatusError(
        405, "MethodNotAllowed", f"the server does not allow this method on the requested resource ({method})"
    )


def internal(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]})
