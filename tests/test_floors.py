"""The packages' floors (docs/architecture.md, "Floors"): no module imports a higher floor.

twotower (the core: config, contract, keys, records, artifact files) at the bottom;
components/ and serving/ beside each other above it; pipeline/ (create_pipeline, runners,
tune, the CLI) on top of them; benchmarks/ uses all. Tests may import anything. Read from
the source with ast, so an import inside a function counts like one at the top.
"""
from __future__ import annotations

import ast
import pathlib
from typing import Iterator

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLOORS = {"twotower": 0, "components": 1, "serving": 1, "pipeline": 2, "benchmarks": 3}
TRAINING_STACK = ("tfx", "apache_beam", "tensorflow_recommenders", "tensorflow_transform",
                  "tensorflow_data_validation", "tensorflow_model_analysis")
# The one reference by name up the floors: `twotower bench NAME` loads the benchmark NAME
# and `twotower tune` benchmarks/tune.py (pipeline/cli_bench.py), a plugin lookup so the
# CLI starts without the benchmarks.
NAMED_LOOKUPS = {("pipeline.cli_bench", "benchmarks")}


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for package in FLOORS:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "tests" in relative.parts:
                continue
            parts = list(relative.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(path: pathlib.Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import statement and importlib.import_module call."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; name the package"
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args):
            first = node.args[0]
            text = first.value if isinstance(first, ast.Constant) else (
                first.values[0].value if isinstance(first, ast.JoinedStr) and first.values
                and isinstance(first.values[0], ast.Constant) else "")
            yield node.lineno, str(text)


def _package(name: str) -> str:
    return name.split(".")[0]


def test_the_walk_sees_every_floor_and_its_imports():
    for package in FLOORS:
        assert any(_package(name) == package for name in MODULES), package
    cli_imports = {name for _, name in _imports(MODULES["pipeline.cli"])}
    assert "twotower.config.PipelineConfig" in cli_imports or any(
        name.startswith("twotower.") for name in cli_imports)
    assert any(name.startswith("benchmarks.") for _, name in _imports(MODULES["pipeline.cli_bench"]))


def test_no_module_imports_a_higher_floor_or_a_sibling():
    wrong = []
    for module, path in MODULES.items():
        own = _package(module)
        for line, name in _imports(path):
            target = _package(name)
            if target not in FLOORS or target == own or (module, target) in NAMED_LOOKUPS:
                continue
            if FLOORS[target] >= FLOORS[own]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not wrong, ("upward or sideways imports (move the shared code down to twotower/):\n"
                       + "\n".join(wrong))


def _own_module(name: str) -> str | None:
    """The module of ours an imported name lives in (`a.b.C` -> `a.b` when that is a module)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def test_the_model_server_and_the_core_need_no_training_stack():
    """serving/ installs without TFX or Beam: nothing it reaches, through our own modules,
    imports them (TensorFlow and ScaNN it needs; they load the models)."""
    starts = [name for name in MODULES if _package(name) in ("serving", "twotower")]
    seen, stack, heavy = set(), list(starts), []
    while stack:
        module = stack.pop()
        if module in seen:
            continue
        seen.add(module)
        for line, name in _imports(MODULES[module]):
            if _package(name) in TRAINING_STACK:
                heavy.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {name}")
            own = _own_module(name)
            if own is not None:
                stack.append(own)
    assert {_package(name) for name in seen} == {"serving", "twotower"}
    assert not heavy, "the model server would need the training stack:\n" + "\n".join(heavy)
