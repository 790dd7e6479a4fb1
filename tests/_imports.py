"""Static import closure of the project's own modules (for the dvc.yaml deps test).

Every ``import`` / ``from ... import`` in a module's source counts, including the lazy ones
inside functions (a stage may reach them), so the closure over-approximates what one run
imports: a dependency DVC tracks needlessly costs a rerun, a missing one a stale result.
The estimators that the registry imports by name (``models.registry.REGISTRY``) are followed
only with ``follow_registry`` (the estimate stage): elsewhere the registry is read by the
params validation, which decides whether a stage runs, never what it writes.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "models")


def module_file(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imports_of(name: str, path: Path, follow_registry: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # submodules imported by name
    if name == "models.registry" and follow_registry:
        from models.registry import REGISTRY

        out.update(REGISTRY.values())
    return {m for m in out if m.split(".")[0] in PACKAGES}


def closure(*roots: str, follow_registry: bool = False) -> set[Path]:
    """Files of every project module reachable from ``roots`` (with their packages' __init__)."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name)
        if path is None:
            continue
        files.add(path)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
        todo.extend(_imports_of(name, path, follow_registry))
    return files


def stage_closure(stage: str) -> set[Path]:
    """Code a stage's command runs: the CLI (it pins the environment) and the stage module.
    Empty files (package markers) are left out: they cannot change a result, and DVC warns
    about every empty file dependency."""
    files = closure("pipeline.cli", f"pipeline.stages.{stage}", follow_registry=stage == "estimate")
    return {f for f in files if f.stat().st_size > 0}


def minimal_cover(files: set[Path]) -> list[str]:
    """``files`` as dvc.yaml deps: a folder wherever every .py file below it is in ``files``."""
    def py_below(d: Path) -> set[Path]:
        return {f for f in d.rglob("*.py") if "__pycache__" not in f.parts and f.stat().st_size > 0}

    out: list[str] = []
    covered: set[Path] = set()
    for pkg in PACKAGES:
        dirs = sorted({p for f in files for p in f.parents if REPO / pkg in (p, *p.parents)}, key=lambda d: len(d.parts))
        for d in dirs:
            if any(c in d.parents or c == d for c in covered):
                continue
            if py_below(d) <= files:
                covered.add(d)
                out.append(str(d.relative_to(REPO)))
    for f in sorted(files):
        if not any(c in f.parents for c in covered):
            out.append(str(f.relative_to(REPO)))
    return sorted(out)


def rewrite_dvc_yaml(path: Path = REPO / "dvc.yaml") -> str:
    """dvc.yaml with each stage's code deps (list items under ``deps:`` naming pipeline/ or
    models/) replaced by :func:`minimal_cover` of its import closure; comments kept."""
    lines = path.read_text().splitlines()
    out: list[str] = []
    stage = None
    in_deps = False
    for line in lines:
        bare = line.strip()
        if line.startswith("  ") and not line.startswith("   ") and bare.endswith(":"):
            stage = bare[:-1]
        if bare == "deps:":
            in_deps = True
            out.append(line)
            indent = " " * (len(line) - len(line.lstrip()) + 2)
            continue
        if in_deps:
            if bare.startswith("- "):
                if bare[2:].startswith(PACKAGES):
                    continue
                out.append(line)
                continue
            out.extend(f"{indent}- {d}" for d in minimal_cover(stage_closure(stage)))
            in_deps = False
        out.append(line)
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # print (or with --write, rewrite) each stage's code deps in dvc.yaml
    import sys

    import yaml

    if "--write" in sys.argv:
        (REPO / "dvc.yaml").write_text(rewrite_dvc_yaml())
    else:
        stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
        for name in stages:
            print(f"{name}:")
            for d in minimal_cover(stage_closure(name)):
                print(f"  - {d}")
