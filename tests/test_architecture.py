"""The architecture, held: the import graph of the package, imports inside functions included, has no
cycle; each room (subpackage) imports only rooms on its own layer or below; the core never imports the
TUI. A new cycle or an upward import fails here, with the edge named."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core" / "promptgrad"

# rooms by layer, lowest first: a module may import its own room and the rooms of lower layers only
LAYERS = [
    {"ground"},  # events, errors, files, signals, quiet, numbers, hub, bundled: the shared vocabulary, nothing of ours
    {"model", "problem"},  # the frozen LM and the template; the pairs and the task library
    {"readout"},  # what a prompt is measured by: loss, the accuracy rule, baselines, intervals, nearest tokens
    {"config"},  # every setting, declared once (it checks values with the rules of the rooms below)
    {"learners", "store"},  # what the loop drives; run folders on disk
    {"integrations"},  # trackers, PEFT export and its model card
    {"train"},  # the one loop and what it sets up
    {"experiments"},  # sweeps and reports over many runs
    {"cli", "api", "package"},  # package: promptgrad/__init__.py and __main__.py
]
LAYER = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in CORE.rglob("*.py")}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Every promptgrad module `path` imports, at its top or inside a function (TYPE_CHECKING blocks too)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:  # promptgrad.model.models.load_model -> promptgrad.model.models
                target = target.rpartition(".")[0]
            if target and target != name and target != "promptgrad":
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(path, name, set(mods)) for name, path in mods.items()}


def room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__",):
        return "package"
    if len(parts) == 2 and parts[1] in ("config", "api"):
        return parts[1]
    if len(parts) == 2:
        return "ground"
    return parts[1]


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_import_runs_down_the_layers():
    upward = []
    for module, targets in graph().items():
        for target in targets:
            here, there = room(module), room(target)
            if there != here and LAYER[there] > LAYER[here]:
                upward.append(f"{module} ({here}) imports {target} ({there})")
            if here == "ground" and there != "ground":
                upward.append(f"{module} (ground) imports {target}")
    assert not upward, "imports that run upward:\n" + "\n".join(sorted(upward))


def test_every_room_is_on_a_layer():
    assert {room(m) for m in modules()} <= set(LAYER)


def test_the_core_never_imports_the_tui_or_textual():
    offending = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            offending += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in ("promptgrad_tui", "textual", "textual_plotext", "plotext")
            ]
    assert not offending, offending


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
