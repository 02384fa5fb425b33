"""The layering: opening any page costs no TensorFlow import. Pages and ui/ hold no TensorFlow code;
they reach the engine's TensorFlow parts through functions that import them when first called."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "app_pages").glob("*.py"))
UI = sorted((ROOT / "ui").glob("*.py"))
NO_TENSORFLOW = [*PAGES, *UI, *(ROOT / "core" / f"{name}.py" for name in ("jobs", "runs", "pretrained"))]
ENGINE = {"tensorflow", "keras"}

# In a fresh process: import every ui module, and run every page module's top level except its
# closing main() call (which draws the page: Streamlit runs it, not an import). Print the first
# module after which TensorFlow or Keras is loaded.
IMPORT_EVERYTHING = """
import ast, importlib, sys
sys.path.insert(0, ".")
for path in sys.argv[1:]:
    if path.startswith("ui/"):
        importlib.import_module("ui." + path[3:-3])
    else:
        tree = ast.parse(open(path).read())
        tree.body = [node for node in tree.body if ast.unparse(node) != "main()"]
        exec(compile(tree, path, "exec"), {"__name__": "page"})
    loaded = sorted({"tensorflow", "keras"} & set(sys.modules))
    if loaded:
        print(path, "imports", ", ".join(loaded))
        break
"""


def test_importing_any_page_or_ui_module_leaves_tensorflow_unloaded():
    modules = [str(p.relative_to(ROOT)) for p in [*UI, *PAGES]]
    out = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING, *modules], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert " imports " not in out.stdout, out.stdout


def module_level_imports(path: Path) -> set[str]:
    """Top-level packages the module imports when it is imported (not those inside its functions)."""
    found = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return  # runs when called, not on import
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_no_page_ui_jobs_runs_or_pretrained_module_imports_tensorflow_at_module_level():
    offenders = {str(p.relative_to(ROOT)): sorted(module_level_imports(p) & ENGINE) for p in NO_TENSORFLOW}
    assert not {path: names for path, names in offenders.items() if names}
