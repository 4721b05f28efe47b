"""The import layers of docs/architecture.md, kept true: each layer imports nothing above it.

A module's layer is found by its name; an import of a module in a layer the importer may not use
fails the test with both names, so a shortcut through the layers is seen the day it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

import orchlog

PACKAGE = Path(orchlog.__file__).resolve().parent

# (layer, the module prefixes in it); the order is the order of the docs, bottom first
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "core",
        (
            "errors",
            "closecodes",
            "paths",
            "ids",
            "logs",
            "origins",
            "console",
            "metrics",
            "config",
            "models",
            "model_fields",
            "filters",
            "volume",
            "validation",
            "auth",
            "slots",
            "integrations",
            "__init__",
        ),
    ),
    ("client", ("client", "agentref", "post", "tail", "demo", "hook", "hook_install")),
    ("store", ("store", "writer", "retention")),
    ("stream", ("stream",)),
    ("runtime", ("runtime", "ingest")),
    ("api", ("api",)),
    ("entry", ("server", "cli", "cli_admin", "admin", "__main__", "bench")),
]
MAY_IMPORT = {
    "core": {"core"},
    "client": {"core", "client"},
    "store": {"core", "store"},
    "stream": {"core", "store", "stream"},
    "runtime": {"core", "store", "stream", "runtime"},
    "api": {"core", "store", "stream", "runtime", "api"},
    "entry": {name for name, _ in LAYERS},
}


def layer_of(module: str) -> str:
    first = module.split(".")[0] if module else "__init__"
    if first == "__version__":  # `from .. import __version__`: the package itself
        first = "__init__"
    for name, prefixes in LAYERS:
        if first in prefixes:
            return name
    raise AssertionError(f"orchlog.{module} is in no layer: add it to LAYERS and docs/architecture.md")


def imports(path: Path) -> set[str]:
    """orchlog modules imported by the file at ``path`` (relative to the package, dotted)."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    package = parts[:-1]  # the package a relative import starts from (for __init__ too)
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                if node.module:
                    out.add(".".join([*base, node.module]))
                else:
                    out.update(".".join([*base, alias.name]) for alias in node.names)
            elif node.module and node.module.startswith("orchlog."):
                out.add(node.module.removeprefix("orchlog."))
        elif isinstance(node, ast.Import):
            out.update(a.name.removeprefix("orchlog.") for a in node.names if a.name.startswith("orchlog."))
    return out


def test_every_module_imports_only_its_layer_and_below() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        layer = layer_of(module)
        for dep in sorted(imports(path)):
            dep_layer = layer_of(dep)
            if dep_layer not in MAY_IMPORT[layer]:
                problems.append(f"orchlog.{module} ({layer}) imports orchlog.{dep} ({dep_layer})")
    assert not problems, "\n".join(problems)


def test_the_checker_sees_a_violation() -> None:
    """The rule is not vacuous: a core module importing the api layer is one."""
    assert "api" not in MAY_IMPORT[layer_of("models")]
    assert layer_of("api.gate") == "api" and layer_of("store.sqlite") == "store"
