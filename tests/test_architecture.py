"""The import contract: dependencies between the packages of ``modules/`` point one way.

    core  <-  settings  <-  models  <-  networks  <-  engine  <-  scripting  <-  cluster  <-  server, page

A package may import its own modules and the packages to its left, never one to its right. The two doors
(server, page) never import each other; the server door never imports gradio (the API runs without the page);
the engine never imports the script layer. Top-level ``modules/*.py`` files are A1111's public module names,
thin facades for extensions: none of our packages imports them, and they hold no logic of their own.
Every import counts, including ones inside functions and under ``TYPE_CHECKING``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

MODULES = Path(__file__).resolve().parents[1] / "modules"

# training sits beside the engine: it trains against the Engine's model in the Engine's queue (Engine.train).
LAYERS = {"core": 0, "settings": 1, "models": 2, "networks": 3, "engine": 4, "training": 4, "scripting": 5, "cluster": 5.5, "server": 6,
          "page": 6}
FACADE_PACKAGES = {"api", "textual_inversion"}  # A1111's packages (``modules.api``...), facades like the top-level files


def _package_files() -> list[Path]:
    return sorted(p for pkg in LAYERS for p in (MODULES / pkg).rglob("*.py"))


def _facade_files() -> list[Path]:
    files = [p for p in MODULES.glob("*.py") if p.name != "__init__.py"]
    for pkg in FACADE_PACKAGES:
        files += sorted((MODULES / pkg).rglob("*.py")) if (MODULES / pkg).is_dir() else []
    # A1111's other importable names: the top-level ``ldm`` package and the built-in Lora extension's modules
    # (``networks``, ``lora``...), facades as well.
    repo = MODULES.parent
    files += sorted((repo / "ldm").rglob("*.py")) + sorted((repo / "extensions-builtin" / "Lora").rglob("*.py"))
    return files


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in ``path``; ``from modules import x`` gives ``modules.x``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "modules":
                out += [(node.lineno, f"modules.{alias.name}") for alias in node.names]
            else:
                out.append((node.lineno, node.module))
    return out


def _where(path: Path) -> str:
    return path.relative_to(MODULES.parent).as_posix()


def _violations(path: Path) -> list[str]:
    own = path.relative_to(MODULES).parts[0]
    found = []
    for line, name in _imports(path):
        parts = name.split(".")
        if parts[0] == "gradio" and own == "server":
            found.append(f"{_where(path)}:{line} imports gradio: the API path must run without the page")
        if parts[0] != "modules" or len(parts) < 2:
            continue
        target = parts[1]
        if target not in LAYERS:
            found.append(f"{_where(path)}:{line} imports the A1111 facade modules.{target}: import the package")
        elif target in ("server", "page") and own in ("server", "page") and target != own:
            found.append(f"{_where(path)}:{line} imports modules.{target}: the doors never import each other")
        elif LAYERS[target] > LAYERS[own]:
            found.append(f"{_where(path)}:{line} imports modules.{target} from modules.{own}: that points the wrong way")
    return found


def test_every_package_is_in_the_layer_table():
    packages = {p.name for p in MODULES.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages - set(LAYERS) - FACADE_PACKAGES == set()


def test_imports_point_one_way():
    problems = [v for path in _package_files() for v in _violations(path)]
    assert problems == []


def test_facades_only_re_export():
    """A facade holds imports, its docstring, ``__all__`` and module ``__getattr__`` lookups: no classes, no
    functions with bodies of logic beyond resolving a name, no state."""
    problems = []
    for path in _facade_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # docstring
                continue
            if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                continue
            if isinstance(node, ast.FunctionDef) and node.name in ("__getattr__", "__dir__"):
                continue
            problems.append(f"{_where(path)}:{node.lineno} {type(node).__name__}")
    assert problems == []


@pytest.mark.parametrize("path", _package_files(), ids=_where)
def test_no_untyped_engine_parameters(path):
    """The Engine is passed typed (or not at all): no ``engine: Any``."""
    text = path.read_text(encoding="utf-8")
    assert "engine: Any" not in text, f"{_where(path)} takes an untyped engine"


def test_the_contract_catches_a_wrong_way_import(tmp_path):
    """The checker itself fails on an import that points the wrong way (a test that can fail)."""
    fake = tmp_path / "modules"
    (fake / "core").mkdir(parents=True)
    bad = fake / "core" / "bad.py"
    bad.write_text("def f():\n    from modules.engine import engine\n    from modules import scripts\n")
    globals()["MODULES"] = fake
    try:
        found = _violations(bad)
    finally:
        globals()["MODULES"] = Path(__file__).resolve().parents[1] / "modules"
    assert len(found) == 2 and "wrong way" in found[0] and "facade" in found[1]
