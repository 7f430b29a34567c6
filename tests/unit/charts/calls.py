"""The Kubernetes API calls tenant-cloud's code makes, read from the code itself (with `ast`), not from a list.

A call site is one of

- `<client>.<verb>(<RESOURCE>, ...)` for the verbs of `kube.client.Client` (`call` included, whose HTTP method
  and subresource are read from its arguments);
- `Informer(<client>, <RESOURCE>, ...)`: list and watch;
- `wait_for_object(<client>, <RESOURCE>, ...)`: get and watch.

The client says which cluster: an expression naming `parent` or `tenant`, or `self.client` in the few
modules whose client is known (OWNED_CLIENTS). The resource is a module-level `kube.resources.Resource`
constant, or a name this module can follow: a loop over constants, a local or attribute assigned from
constants (`a if x else b` included), or a parameter every caller passes a string literal for. Anything else
is reported as unresolved rather than skipped, so a new kind of call site fails the RBAC tests until it is
understood.

Only modules the processes import count: the import closure of each entry point (`ccm/__main__.py`,
`csi/__main__.py`), function-level imports included. A module nothing imports yet makes no calls; the day an
entry point imports it, its calls must be granted.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kube.resources import Resource

REPO = Path(__file__).resolve().parents[3]
ENTRY_POINTS = {"ccm": "ccm/__main__.py", "csi": "csi/__main__.py"}
OUR_PACKAGES = ("kube", "lb", "ccm", "csi")
# Modules whose `self.client` is known: shared runtime modules that make calls of their own are always given
# the tenant client (the event recorder, leader election); the CSI driver's parent view holds the parent's.
OWNED_CLIENTS = {"kube/events.py": "tenant", "kube/leaderelection.py": "tenant", "csi/parent.py": "parent"}
CLIENT_VERBS = {
    "get": "get",
    "list": "list",
    "pages": "list",
    "list_all": "list",
    "create": "create",
    "update": "update",
    "patch": "patch",
    "apply": "patch",
    "delete": "delete",
}
HTTP_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
HELPERS = {"Informer": ("list", "watch"), "wait_for_object": ("get", "watch")}


@dataclass(frozen=True, order=True)
class Permission:
    cluster: str  # parent | tenant
    component: str  # ccm | csi
    group: str
    resource: str  # plural, or plural/subresource
    verb: str


@dataclass(frozen=True)
class CallSite:
    permission: Permission
    where: str  # path:line
    function: str  # the enclosing function's name ("" at module level)


class Unresolved(Exception):
    """A call site whose cluster, resource or subresource the scanner cannot tell."""


@dataclass
class Module:
    path: str  # relative to the repo, e.g. ccm/views.py
    name: str  # dotted, e.g. ccm.views
    tree: ast.Module
    parents: dict[ast.AST, ast.AST]
    components: frozenset[str]  # the processes that import it: ccm, csi

    @classmethod
    def load(cls, path: str, components: frozenset[str], source: str | None = None, name: str | None = None) -> Module:
        tree = ast.parse(source if source is not None else (REPO / path).read_text(), filename=path)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        dotted = name or path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        return cls(path, dotted, tree, parents, components)

    def enclosing(self, node: ast.AST, kind: type[ast.AST]) -> ast.AST | None:
        current = self.parents.get(node)
        while current is not None and not isinstance(current, kind):
            current = self.parents.get(current)
        return current


def _module_path(dotted: str) -> str | None:
    """The file of one of our modules, relative to the repo, or None (not ours, or not a module)."""
    if dotted.split(".")[0] not in OUR_PACKAGES or "_proto" in dotted.split("."):
        return None
    base = dotted.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if (REPO / candidate).is_file():
            return candidate
    return None


def imported_modules(path: str) -> set[str]:
    """Files of our modules that `path` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((REPO / path).read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for dotted in names:
            parts = dotted.split(".")
            for end in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                module = _module_path(".".join(parts[:end]))
                if module:
                    found.add(module)
    return found


def import_closure(entry: str) -> set[str]:
    seen, pending = {entry}, [entry]
    while pending:
        for module in imported_modules(pending.pop()) - seen:
            seen.add(module)
            pending.append(module)
    return seen


def scanned_modules() -> list[Module]:
    """Our modules the processes import, minus the generic runtime (it calls only on its callers' behalf)."""
    components: dict[str, set[str]] = {}
    for component, entry in ENTRY_POINTS.items():
        for path in import_closure(entry):
            components.setdefault(path, set()).add(component)
    return [
        Module.load(path, frozenset(owners))
        for path, owners in sorted(components.items())
        if not path.startswith("kube/") or path in OWNED_CLIENTS
    ]


class Scanner:
    def __init__(self, modules: list[Module], globals_of: dict[str, dict[str, object]] | None = None) -> None:
        self.modules = modules
        self._globals = globals_of or {}

    # -- resolving names --------------------------------------------------------------------------------

    def _module_global(self, module: Module, name: str) -> object | None:
        if module.name not in self._globals:
            try:
                self._globals[module.name] = vars(importlib.import_module(module.name))
            except ImportError:
                self._globals[module.name] = {}
        return self._globals[module.name].get(name)

    def resources(self, module: Module, node: ast.expr, site: ast.AST) -> list[Resource]:
        if isinstance(node, ast.IfExp):
            return self.resources(module, node.body, site) + self.resources(module, node.orelse, site)
        if isinstance(node, ast.Tuple | ast.List):
            return [r for element in node.elts for r in self.resources(module, element, site)]
        if isinstance(node, ast.Name):
            value = self._module_global(module, node.id)
            if isinstance(value, Resource):
                return [value]
            bound = self._local_binding(module, node.id, site)
            if bound is not None:
                return self.resources(module, bound, bound)
        if isinstance(node, ast.Attribute):
            assigned = self._attribute_assignments(node.attr)
            if assigned:
                return [r for owner, value in assigned for r in self.resources(owner, value, value)]
        raise Unresolved(
            f"{module.path}:{getattr(site, 'lineno', '?')}: cannot tell which resource {ast.unparse(node)} is"
        )

    def _local_binding(self, module: Module, name: str, site: ast.AST) -> ast.expr | None:
        """What a local name is bound to in the enclosing function: an assignment or a `for` over constants."""
        function = module.enclosing(site, ast.FunctionDef) or module.enclosing(site, ast.AsyncFunctionDef)
        for node in ast.walk(function or module.tree):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return node.value
            if (
                isinstance(node, ast.For | ast.AsyncFor)
                and isinstance(node.target, ast.Name)
                and node.target.id == name
            ):
                return node.iter
        return None

    def _attribute_assignments(self, attribute: str) -> list[tuple[Module, ast.expr]]:
        found = []
        for module in self.modules:
            for node in ast.walk(module.tree):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Attribute) and target.attr == attribute:
                            found.append((module, node.value))
        return found

    def _literal_arguments(self, module: Module, node: ast.expr, site: ast.AST) -> list[str]:
        """A string argument: a literal, or a parameter that every caller of the function passes a literal for."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        function = module.enclosing(site, ast.AsyncFunctionDef) or module.enclosing(site, ast.FunctionDef)
        if isinstance(node, ast.Name) and isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            params = [a.arg for a in function.args.args if a.arg != "self"]
            if node.id in params:
                index = params.index(node.id)
                values = []
                for caller in self.modules:
                    for call in ast.walk(caller.tree):
                        if isinstance(call, ast.Call) and _called_name(call) == function.name:
                            if len(call.args) <= index:
                                raise Unresolved(f"{caller.path}:{call.lineno}: {function.name} without {node.id}")
                            values += self._literal_arguments(caller, call.args[index], call)
                if values:
                    return values
        raise Unresolved(f"{module.path}:{getattr(site, 'lineno', '?')}: cannot tell the value of {ast.unparse(node)}")

    # -- finding call sites -----------------------------------------------------------------------------

    def _cluster(self, module: Module, receiver: ast.expr) -> str | None:
        text = ast.unparse(receiver)
        for cluster in ("parent", "tenant"):
            if cluster in text.split("."):
                return cluster
        if text in ("self.client", "client") and module.path in OWNED_CLIENTS:
            return OWNED_CLIENTS[module.path]
        return None

    def call_sites(self) -> Iterator[CallSite]:
        for module in self.modules:
            for node in ast.walk(module.tree):
                if isinstance(node, ast.Call):
                    yield from self._call_site(module, node)

    def _call_site(self, module: Module, call: ast.Call) -> Iterator[CallSite]:
        where = f"{module.path}:{call.lineno}"
        enclosing = module.enclosing(call, ast.AsyncFunctionDef) or module.enclosing(call, ast.FunctionDef)
        function = enclosing.name if isinstance(enclosing, ast.FunctionDef | ast.AsyncFunctionDef) else ""
        name = _called_name(call)
        if name in HELPERS and len(call.args) >= 2:
            owner = self._cluster(module, call.args[0])
            if owner is None:
                raise Unresolved(f"{where}: cannot tell which cluster {ast.unparse(call.args[0])} is")
            for resource in self.resources(module, call.args[1], call):
                for verb in HELPERS[name]:
                    for permission in _permissions(module, owner, resource, None, verb):
                        yield CallSite(permission, where, function)
            return
        if not isinstance(call.func, ast.Attribute) or not call.args:
            return
        method = call.func.attr
        if method == "call":
            owner = self._cluster(module, call.func.value)
            if owner is None or len(call.args) < 4:
                return
            verbs = [HTTP_VERBS[m] for m in self._literal_arguments(module, call.args[0], call)]
            subresources = self._literal_arguments(module, call.args[3], call)
            for resource in self.resources(module, call.args[1], call):
                for verb in verbs:
                    for subresource in subresources:
                        for permission in _permissions(module, owner, resource, subresource, verb):
                            yield CallSite(permission, where, function)
            return
        if method not in CLIENT_VERBS:
            return
        if isinstance(call.args[0], ast.Constant):
            return  # dict.get("key"), not a client call
        owner = self._cluster(module, call.func.value)
        if owner is None:
            if self._is_resource_constant(module, call.args[0]):
                raise Unresolved(f"{where}: cannot tell which cluster {ast.unparse(call.func.value)} is")
            return
        keyword = next(
            (str(k.value.value) for k in call.keywords if k.arg == "subresource" and isinstance(k.value, ast.Constant)),
            None,
        )
        for resource in self.resources(module, call.args[0], call):
            for permission in _permissions(module, owner, resource, keyword, CLIENT_VERBS[method]):
                yield CallSite(permission, where, function)

    def _is_resource_constant(self, module: Module, node: ast.expr) -> bool:
        return isinstance(node, ast.Name) and isinstance(self._module_global(module, node.id), Resource)


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    if isinstance(call.func, ast.Name):
        return call.func.id
    return None


def _permissions(
    module: Module, cluster: str, resource: Resource, subresource: str | None, verb: str
) -> Iterator[Permission]:
    plural = f"{resource.plural}/{subresource}" if subresource else resource.plural
    for component in sorted(module.components):
        yield Permission(cluster, component, resource.group, plural, verb)


def code_calls() -> list[CallSite]:
    """Every call site the ccm and CSI processes can reach."""
    return list(Scanner(scanned_modules()).call_sites())
