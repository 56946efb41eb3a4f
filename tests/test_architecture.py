"""The shape of the code: one name per stage from rule to subcommand to function, and layered packages.

- Every Snakemake rule that does work is a `kronbench` subcommand of the same name (_ <-> -) and a public library
  function of that name, and the README's map lists all three.
- The packages are layered (pyproject.toml [tool.importlinter], checked here with import-linter): nothing imports
  from a layer above its own, no module import cycle, and no package imports another package's private names.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import ROOT

PKG = ROOT / "kronbench"
TARGETS = {"all", "all_tables", "all_figures"}  # aggregate targets: inputs only, no command


def rules() -> dict[str, str]:
    """rule name -> its text, from the Snakefile and workflow/rules/*.smk."""
    out = {}
    for f in [ROOT / "Snakefile", *sorted((ROOT / "workflow/rules").glob("*.smk"))]:
        for block in re.split(r"^(?=rule \w+:|use rule )", f.read_text(), flags=re.M):
            if m := re.match(r"rule (\w+):", block):
                out[m[1]] = block
            assert not block.startswith("use rule"), f"{f.name}: a `use rule` makes a rule named unlike its command"
    return out


def public_functions() -> dict[str, str]:
    """Top-level public function name -> module, over the package."""
    out = {}
    for f in PKG.rglob("*.py"):
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                out.setdefault(node.name, str(f.relative_to(ROOT)))
    return out


def test_every_rule_is_a_subcommand_and_a_function_of_its_name():
    from kronbench.cli import build_parser

    subcommands = set(build_parser()._subparsers._group_actions[0].choices)
    functions = public_functions()
    readme = (ROOT / "README.md").read_text()
    work = {name: text for name, text in rules().items() if name not in TARGETS}
    assert len(work) >= 15, sorted(work)
    for name, text in work.items():
        command = name.replace("_", "-")
        assert command in subcommands, f"rule {name}: no `kronbench {command}`"
        assert re.search(rf"(kronbench|{{params.cmd}}) {command}\b", text), f"rule {name} does not call `kronbench {command}`"
        assert name in functions, f"rule {name}: no public function {name}() in kronbench/"
        assert re.search(rf"`{name}`.*`kronbench {command}`.*`{functions[name].removesuffix('.py')}", readme), (
            f"README's map lacks the row of rule {name} (`{name}` | `kronbench {command}` | `{functions[name]}`)")


def test_layers_hold():
    """pyproject.toml's layers contract: no import from a lower layer to a higher one, independent siblings."""
    import subprocess
    import sys

    p = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "1 kept, 0 broken" in p.stdout, p.stdout[-3000:] + p.stderr[-2000:]


def _imports() -> dict[str, set[str]]:
    """module -> the kronbench modules it imports, function-level imports too (grimp, import-linter's graph)."""
    import grimp

    graph = grimp.build_graph("kronbench", cache_dir=None)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def test_no_module_import_cycle():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(mod, path):
        state[mod] = 1
        for dep in graph[mod]:
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep] if dep in path else [mod, dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, path + [dep])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])


def test_no_private_name_crosses_a_package():
    bad = []
    for f in PKG.rglob("*.py"):
        own = f.relative_to(ROOT).parts[1]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kronbench."):
                other = node.module.split(".")[1]
                bad += [f"{f.relative_to(ROOT)}: from {node.module} import {a.name}" for a in node.names
                        if a.name.startswith("_") and other != own]
    assert not bad, bad


def test_readme_is_a_front_door():
    """≤ 200 lines, and every repository path it names exists (no reference to a document we do not ship)."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200, len(text.splitlines())
    paths = set(re.findall(r"\]\(((?!https?:)[^)#\s]+)", text))  # Markdown links
    paths |= {p for p in re.findall(r"`((?:docs|config|kronbench|workflow|ci|profiles|tests)/[\w./-]+)`", text)}
    missing = sorted(p for p in paths if not (ROOT / p).exists() and "<" not in p and "*" not in p)
    assert not missing, missing


def test_the_drawing_of_the_imports_is_current_and_points_down():
    """docs/imports.md is ci/draw-imports.py's output for this code, and every arrow goes to a lower layer."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("draw_imports", ROOT / "ci/draw-imports.py")
    draw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(draw)
    text = draw.drawing()
    assert (ROOT / "docs/imports.md").read_text() == text, "run: .venv/bin/python ci/draw-imports.py > docs/imports.md"
    level = {p: i for i, layer in enumerate(draw.layers()) for p in layer}
    arrows = re.findall(r"^    (\w+) --> (\w+)$", text, flags=re.M)
    assert len(arrows) >= 20 and all(level[a] < level[b] for a, b in arrows), arrows
