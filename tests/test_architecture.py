"""The layering rules of docs/architecture.md, checked on the source: a plugin uses only
llmcore's public API (``import llmcore`` and ``llmcore.testing``), never another plugin; the
core never imports a plugin."""

from __future__ import annotations

import ast
from pathlib import Path

from workspace_plugins import PLUGIN_DIRS

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_MODULES = {next((d / "src").iterdir()).name for d in PLUGIN_DIRS}


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
    return out


def test_there_are_ten_plugins() -> None:
    assert len(PLUGIN_MODULES) == 11


def test_plugins_use_only_the_public_api_and_no_other_plugin() -> None:
    bad = []
    for d in PLUGIN_DIRS:
        own = next((d / "src").iterdir()).name
        for path in (d / "src").rglob("*.py"):
            for name in imports(path):
                top = name.split(".")[0]
                if (
                    top == "llmcore"
                    and name not in ("llmcore",)
                    and not name.startswith("llmcore.testing")
                ):
                    bad.append(f"{path.relative_to(ROOT)}: imports {name}")
                if top in PLUGIN_MODULES and top != own:
                    bad.append(f"{path.relative_to(ROOT)}: imports another plugin {name}")
    assert bad == []


HTTP_CLIENTS = ("httpx", "httpcore", "aiohttp", "h11", "requests", "urllib3")


def test_only_the_transport_layer_speaks_http() -> None:
    """Every HTTP call goes through ``llmcore/http`` (limits, deadlines, no redirects);
    the gateway's server side may use ``aiohttp.web``, never its client."""
    bad = []
    sources = [*(ROOT / "core" / "src").rglob("*.py")]
    for d in PLUGIN_DIRS:
        sources += (d / "src").rglob("*.py")
    for path in sources:
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("core/src/llmcore/http/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module + "." + a.name for a in node.names]
            for name in names:
                if name.split(".")[0] not in HTTP_CLIENTS:
                    continue
                server = rel.startswith("core/src/llmcore/serve/") and name == "aiohttp.web"
                if not server:
                    bad.append(f"{rel}:{node.lineno}: {name}")
    assert not bad, "HTTP client code outside llmcore/http:\n" + "\n".join(bad)


def test_the_core_never_imports_a_plugin() -> None:
    bad = [
        f"{p.relative_to(ROOT)}: {n}"
        for p in (ROOT / "core" / "src").rglob("*.py")
        for n in imports(p)
        if n.split(".")[0] in PLUGIN_MODULES
    ]
    assert bad == []


# -- import cycles between the core's modules ---------------------------------------------
CORE = ROOT / "core" / "src" / "llmcore"


def _core_modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in CORE.rglob("*.py"):
        parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = (path, is_package)
    return out


def _under_type_checking(tree: ast.AST) -> set[int]:
    """Nodes inside ``if TYPE_CHECKING:`` (never run, so no cycle at import or call time)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def import_graph() -> dict[str, set[str]]:
    """Core module -> the core modules it imports, at module level AND inside functions
    (a function-level import is the same knot, only tied later)."""
    modules = _core_modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = mod if is_package else mod.rpartition(".")[0]
        skip = _under_type_checking(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    full = ".".join(base) + (f".{node.module}" if node.module else "")
                else:
                    full = node.module or ""
                # `from pkg import sub` imports the submodule; `from mod import name` the module
                names = [
                    f"{full}.{a.name}" if f"{full}.{a.name}" in modules else full
                    for a in node.names
                ]
            for name in names:
                target = resolve(name) if name.split(".")[0] == "llmcore" else None
                if target is not None and target != mod:
                    graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def one_loop(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A concrete loop through ``comp`` (a -> b -> ... -> a), to name it in the failure."""
    start = min(comp)
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & comp):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                todo.append(w)
    return sorted(comp)  # pragma: no cover (a component always loops back)


def test_the_import_graph_sees_function_level_imports() -> None:
    """The check below is only as good as its graph: an import inside a function counts,
    one under ``if TYPE_CHECKING`` does not."""
    graph = import_graph()
    assert "llmcore.runner" in graph["llmcore.agents"]  # Agent.run imports it when called
    assert "llmcore.agents" not in graph["llmcore.runner"]  # only under TYPE_CHECKING
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert one_loop({"a": {"b"}, "b": {"a"}}, {"a", "b"}) == ["a", "b", "a"]


def test_no_import_cycle_between_core_modules() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, (
        "import cycles in core/src/llmcore (move the shared piece where it "
        "belongs):\n" + "\n".join(" -> ".join(one_loop(graph, c)) for c in found)
    )


def test_reading_a_config_never_reaches_the_plugin_manager() -> None:
    """The knot that was last untied: config learns plugin sections from plugin_loading
    (entry points only), never from the manager that registers the providers and sinks
    which themselves read config."""
    graph = import_graph()

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for w in graph[todo.pop()] - seen:
                seen.add(w)
                todo.append(w)
        return seen

    assert "llmcore.plugin_loading" in graph["llmcore.config"]
    assert not reach("llmcore.config") & {"llmcore.plugins", "llmcore.builtin", "llmcore.sinks"}


def test_a_run_never_reaches_back_into_the_router() -> None:
    """``Run`` and the loops get their collaborators (``Crew``), not the ``Router``."""
    for name in ("run.py", "calls.py", "streams.py"):
        tree = ast.parse((CORE / "router" / name).read_text(encoding="utf-8"))
        bad = [
            ast.unparse(n)
            for n in ast.walk(tree)
            if (isinstance(n, ast.Attribute) and n.attr == "router")
            or (isinstance(n, ast.ImportFrom) and n.module == "api")
        ]
        assert not bad, f"router/{name} reaches into the Router: {bad}"


# -- `make unit` needs no setup script -----------------------------------------------------
#: What the setup scripts install or start, as the tests reach it (tests/agent_env.py,
#: tests/redis_server.py, tests/real_llama.py, tests/gateway_support.py).
SETUP_PRODUCTS = frozenset(
    {
        "real_program",
        "ensure_agents",
        "real_agent_client",
        "real_agent_yaml",
        "check_cli_runs_agent",
        "RealAgentChecks",
        "ChatAgentChecks",
        "RedisServer",
        "llama_server",
        "llama_gateway",
    }
)
SETUP_MARKS = ("real_agent", "real_server", "redis")


def unmarked_setup_users(path: Path) -> list[str]:
    """Tests in ``path`` that reach a setup-script product, directly or through a helper
    of the same file, without one of ``SETUP_MARKS`` (on the test, its class or the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def marked(nodes: list[ast.expr]) -> bool:
        return any(f"mark.{m}" in ast.unparse(n) for n in nodes for m in SETUP_MARKS)

    file_marked = any(
        isinstance(n, ast.Assign)
        and any(getattr(t, "id", None) == "pytestmark" for t in n.targets)
        and marked([n.value])
        for n in tree.body
    )
    defs = [
        n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    uses = {
        d.name: {n.id for n in ast.walk(d) if isinstance(n, ast.Name)}
        | {n.arg for n in ast.walk(d) if isinstance(n, ast.arg)}
        | {n.attr for n in ast.walk(d) if isinstance(n, ast.Attribute)}
        for d in defs
    }
    reaching = set(SETUP_PRODUCTS)
    grown = True
    while grown:  # helpers (and fixtures) of this file that reach a product reach it too
        grown = False
        for d in defs:
            if d.name not in reaching and uses[d.name] & reaching:
                reaching.add(d.name)
                grown = True
    return [
        d.name
        for d in defs
        if d.name.startswith(("test_", "Test"))
        and d.name in reaching
        and not file_marked
        and not marked(d.decorator_list)
    ]


def test_the_unit_tests_need_no_setup_script() -> None:
    """`make unit` (core/tests and plugins/*/tests, minus the marked tests) runs on a fresh
    clone: a test there that needs a real agent, llama.cpp or redis-server says so with a
    marker, which `make unit` deselects."""
    found = [
        f"{p.relative_to(ROOT)}::{name}"
        for base in (ROOT / "core" / "tests", *(ROOT / "plugins").glob("*/tests"))
        for p in sorted(base.rglob("test_*.py"))
        for name in unmarked_setup_users(p)
    ]
    assert not found, "mark these (pytest.mark.real_agent / real_server / redis):\n" + "\n".join(
        found
    )
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert all(f"not {m}" in makefile for m in SETUP_MARKS)


def test_the_setup_scan_sees_helpers_and_marks(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import pytest\n"
        "def _agent():\n    return real_program('x')\n"
        "def test_a():\n    _agent()\n"
        "@pytest.mark.real_agent\ndef test_b():\n    _agent()\n"
        "def test_c(llama_server):\n    pass\n"
        "def test_d():\n    pass\n"
    )
    assert unmarked_setup_users(sample) == ["test_a", "test_c"]
    sample.write_text(sample.read_text() + "pytestmark = pytest.mark.redis\n")
    assert unmarked_setup_users(sample) == []


def test_ruff_format_and_lint_are_clean() -> None:
    """The tree stays as `ruff format` writes it and `ruff check` passes (what `make lint`
    runs), so a style slip fails here, not in the next person's diff."""
    import subprocess
    import sys

    paths = ["core", "plugins", "tests", "bench", "docs"]
    for args in (["format", "--check", *paths], ["check", *paths]):
        out = subprocess.run(
            [sys.executable, "-m", "ruff", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, f"ruff {args[0]}:\n{out.stdout}{out.stderr}"
