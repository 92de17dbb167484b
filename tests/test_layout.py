"""The package's layout holds: tables named once, imports pointing down the stages.

Static checks over the source (``ast``, no imports run): each fails with the file and
line that breaks the rule, so a change that retypes a table name or imports upwards is
caught here rather than in review.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from clv.data import catalog

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "clv"
#: Code that ships (tests may spell table names: they check the code against them).
CODE_DIRS = ("src", "jobs", "dags", "plugins", "mlflow", "bench")
#: The stages, bottom first: a module may import its own stage and those below it.
STAGES = ("config", "data", "quality", "ingest", "features", "models", "decisions",
          "pipeline", "ops")
#: Lines a module may hold (the issue's "about 500").
MAX_LINES = 520


def _stage(module: str) -> int:
    """Stage index of a ``clv.*`` module (top-level helpers such as clv.config and
    clv.log_noise are the bottom)."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in STAGES:
        return 0
    return STAGES.index(parts[1])


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _clv_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Every ``clv`` module a file imports, anywhere in it (lazy imports included)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("clv.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "clv" or node.module.startswith("clv."):
                # "from clv.data import warehouse" imports the submodule clv.data.warehouse;
                # "from clv.quality import validate" a name of clv.quality itself
                found += [(node.lineno, f"{node.module}.{a.name}"
                           if _is_module(f"{node.module}.{a.name}") else node.module)
                          for a in node.names]
    return found


def _is_module(dotted: str) -> bool:
    base = PACKAGE.parent / Path(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def test_the_catalogue_lists_each_table_once_under_its_constant():
    constants = {v: k for k, v in vars(catalog).items()
                 if k.isupper() and isinstance(v, str) and re.fullmatch(r"[a-z]+\.[a-z_]+", v)}
    assert set(constants) == set(catalog.TABLES)
    assert len(catalog.TABLE_LIST) == len(catalog.TABLES)  # no name listed twice
    for table in catalog.TABLE_LIST:
        assert table.schema in ("raw", "quality", "features", "marts"), table
        assert table.key, f"{table.qualified_name} has no key"


def test_no_table_name_is_spelled_outside_the_catalogue():
    names = "|".join(re.escape(n) for n in catalog.TABLES)
    literal = re.compile(rf"""["']({names})["']""")
    offenders = []
    for folder in CODE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == PACKAGE / "data" / "catalog.py":
                continue
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                if literal.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "table names belong in clv.data.catalog:\n" + "\n".join(offenders)


def test_defaults_and_the_spark_pool_are_said_once():
    offenders = []
    pool = re.compile(r"""["']pools["']\s*,\s*["']set["']|pools set spark""")
    for folder in (*CODE_DIRS, "Makefile"):
        paths = [ROOT / folder] if folder == "Makefile" else sorted((ROOT / folder).rglob("*.py"))
        for path in paths:
            if path == PACKAGE / "config.py":
                continue
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                if pool.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
                if re.search(r"""(default=|Param\()\s*(180|5000(\.0)?|0\.5)\b""", line):
                    offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "defaults and the pool live in clv.config:\n" + "\n".join(offenders)


def test_imports_point_down_the_stages_and_never_cycle():
    graph: dict[str, set[str]] = {}
    upward = []
    for path in _package_modules():
        module = _module_name(path)
        graph[module] = set()
        for lineno, imported in _clv_imports(ast.parse(path.read_text())):
            graph[module].add(imported)
            if _stage(imported) > _stage(module):
                upward.append(f"{path.relative_to(ROOT)}:{lineno}: {module} imports {imported}")
    assert not upward, "imports must point down the stages " + " < ".join(STAGES) + ":\n" \
        + "\n".join(upward)
    # cycles among modules (a package counts as its __init__)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph or nxt == node:
                continue
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt):] if nxt in trail else trail
                pytest.fail("import cycle: " + " -> ".join([*cycle, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_no_module_is_over_about_500_lines():
    long = [f"{p.relative_to(ROOT)}: {n}" for p in _package_modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join(long)


def test_a_stage_package_never_imports_its_own_package_init():
    offenders = []
    for path in _package_modules():
        if path.name in ("__init__.py", "__main__.py"):
            continue
        package = _module_name(path).rsplit(".", 1)[0]
        for lineno, imported in _clv_imports(ast.parse(path.read_text())):
            if imported == package and (PACKAGE.parent / Path(*package.split("."))
                                        / "__init__.py").exists() and package != "clv":
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: imports {package}")
    assert not offenders, "\n".join(offenders)
