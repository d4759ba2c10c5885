"""The layers hold (import-linter contracts in pyproject.toml, also run by `make lint`), so a plain pytest run
catches an import that points up, a Slack import in the domain or a new cycle."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
from pathlib import Path

import pytest
from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    out = capsys.readouterr().out
    assert code == EXIT_STATUS_SUCCESS, out
    assert "0 broken" in out


def test_no_imports_inside_functions_in_the_domain_and_adapters() -> None:
    """An import inside a function is how a cycle hides from the contracts; type-only imports are fine."""
    found = []
    for package in ("bot", "handlers"):
        for path in (ROOT / package).rglob("*.py"):
            lines = path.read_text().splitlines()
            for n, line in enumerate(lines, 1):
                stripped = line.lstrip()
                indented = line != stripped
                if indented and (stripped.startswith("import ") or stripped.startswith("from ")):
                    guard = next((p for p in reversed(lines[: n - 1]) if not p.startswith(" ")), "")
                    if "TYPE_CHECKING" not in guard:
                        found.append(f"{path.relative_to(ROOT)}:{n}: {stripped}")
    assert not found, "\n".join(found)


def test_sandbox_is_not_inside_the_product_package() -> None:
    assert not (ROOT / "bot" / "sandbox").exists()
    assert os.path.isfile(ROOT / "sandbox" / "slack_standin.py")


def test_handlers_open_no_database_sessions() -> None:
    """A handler parses, checks permission, calls a flow and renders: transactions belong to the flows (the
    domain), so what a command changes commits, or not, as one unit whatever the handler does after."""
    found = []
    for path in (ROOT / "handlers").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if ".session(" in line or "AsyncSession" in line:
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


# -- handlers: ack → parse → one flow call → render -----------------------------------------------------------
#
# What a handler may do besides its one flow call, and so what the count below leaves out:
#   * the context step: which incident the request is about and whether this person may (the Ctx methods in
#     handlers/registry.py, handlers/guard.py, and cmd_lifecycle's war_room_incident/incident_by_id, which
#     are that step for buttons and forms): the table's permission column, not an intention's logic;
#   * answering: Slack I/O through `svc.chat` (posts, edits, views, ephemerals), `ack`, `respond`;
#   * rendering: Block Kit builders in handlers/ and pure helpers from bot/ (text, escaping, time formats,
#     types) — anything not awaited and not a coroutine function.
# What counts is a call into the domain: an awaited call (or a coroutine made for a task) of something
# imported from `bot.*` (a flow function, a flow object's method, a store lookup), or an awaited `svc.<x>`
# other than `svc.chat` (e.g. `svc.kick`). Helpers in handlers/ are followed into; the count is per path
# (an `if` that calls one flow or another is one call), a call in a loop counts twice.

CONTEXT_STEP = {
    ("handlers/guard.py", None),  # every function: the permission check, the button's incident
    ("handlers/registry.py", None),  # Ctx.incident_here, incident_to_change, require, ...
    ("handlers/cmd_lifecycle.py", "war_room_incident"),
    ("handlers/cmd_lifecycle.py", "incident_by_id"),
}
CONTEXT_METHODS = {"incident_here", "incident_to_change", "require", "war_room", "incident_named"}
# bot modules whose functions are pure helpers (rendering, text, types), never a flow.
PURE_BOT = ("bot.slack_text", "bot.timefmt", "bot.ports", "bot.errors", "bot.states", "bot.models")
# Handlers that make more than one domain call on purpose, each with its reason. Keep it short.
MULTI_CALL_ALLOWED: dict[str, str] = {}

NEG = float("-inf")


class _Module:
    def __init__(self, rel: str) -> None:

        self.rel = rel
        self.tree = ast.parse((ROOT / rel).read_text())
        self.functions: dict[str, ast.AsyncFunctionDef | ast.FunctionDef] = {}
        self.bot_names: dict[str, str] = {}  # local name -> dotted bot object
        self.handler_names: dict[str, tuple[str, str | None]] = {}  # name -> (module rel, function|None)
        for node in ast.walk(self.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions.setdefault(node.name, node)
        for node in self.tree.body:
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    local = alias.asname or alias.name
                    if node.module == "bot" or node.module.startswith("bot."):
                        self.bot_names[local] = f"{node.module}.{alias.name}"
                    elif node.module == "handlers":
                        self.handler_names[local] = (f"handlers/{alias.name}.py", None)
                    elif node.module.startswith("handlers."):
                        self.handler_names[local] = (node.module.replace(".", "/") + ".py", alias.name)


class _Counter:
    """Domain calls per path of a handler (see above)."""

    def __init__(self) -> None:
        self.modules: dict[str, _Module] = {}
        self.memo: dict[tuple[str, str], float] = {}
        self.sites: dict[tuple[str, str], set[str]] = {}
        self.stack: list[tuple[str, str]] = []

    def module(self, rel: str) -> _Module:
        if rel not in self.modules:
            self.modules[rel] = _Module(rel)
        return self.modules[rel]

    def function(self, rel: str, name: str) -> tuple[float, set[str]]:
        """(most domain calls on one path through `name`, the call sites reached)."""
        key = (rel, name)
        if (rel, None) in CONTEXT_STEP or key in CONTEXT_STEP:
            return 0, set()
        if key in self.memo:
            return self.memo[key], self.sites[key]
        if key in self.stack:
            return 0, set()
        mod = self.module(rel)
        fn = mod.functions.get(name)
        if fn is None:
            return 0, set()
        self.stack.append(key)
        sites: set[str] = set()
        local_bot: set[str] = set()
        fall, ret = self.block(mod, fn.body, sites, local_bot)
        self.stack.pop()
        self.memo[key], self.sites[key] = max(fall, ret, 0), sites
        return self.memo[key], sites

    # statements: (most calls falling through, most calls on a path that returned or raised)
    def block(self, mod: _Module, stmts: list, sites: set[str], local_bot: set[str]) -> tuple[float, float]:
        fall, ret = 0.0, NEG
        for stmt in stmts:
            f, r = self.stmt(mod, stmt, sites, local_bot)
            ret = max(ret, fall + r)
            fall = fall + f
            if fall == NEG:
                break
        return fall, ret

    def stmt(self, mod: _Module, s: object, sites: set[str], local_bot: set[str]) -> tuple[float, float]:

        ex = lambda e: self.expr(mod, e, sites, local_bot)  # noqa: E731
        blk = lambda b: self.block(mod, b, sites, local_bot)  # noqa: E731
        if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            return 0, NEG  # a nested def counts where it is called
        if isinstance(s, ast.Return | ast.Raise):
            value = s.value if isinstance(s, ast.Return) else s.exc
            return NEG, ex(value) if value is not None else 0
        if isinstance(s, ast.If):
            t = ex(s.test)
            (fb, rb), (fo, ro) = blk(s.body), blk(s.orelse)
            return t + max(fb, fo), t + max(rb, ro)
        if isinstance(s, ast.For | ast.AsyncFor | ast.While):
            t = ex(s.iter if not isinstance(s, ast.While) else s.test)
            fb, rb = blk(s.body)
            once = max(fb, rb, 0)
            loop = 2 * once if once else 0  # a domain call in a loop is more than one call
            fo, ro = blk(s.orelse)
            return t + loop + fo, max(t + loop + ro, t + rb if rb != NEG else NEG)
        if isinstance(s, ast.With | ast.AsyncWith):
            t = sum(ex(item.context_expr) for item in s.items)
            fb, rb = blk(s.body)
            return t + fb, t + rb
        if isinstance(s, ast.Try | ast.TryStar):
            fb, rb = blk(s.body)
            most = max(fb, rb, 0)
            fe, re_ = blk(s.orelse)
            falls, rets = [fb + fe], [rb, fb + re_]
            for h in s.handlers:
                fh, rh = blk(h.body)
                falls.append(most + fh)
                rets.append(most + rh)
            ff, rf = blk(s.finalbody)
            return max(falls) + ff, max(max(rets) + max(ff, 0), max(falls) + rf)
        if isinstance(s, ast.Match):
            t = ex(s.subject)
            outs = [blk(c.body) for c in s.cases]
            return t + max(f for f, _ in outs), t + max(r for _, r in outs)
        if isinstance(s, ast.Assign | ast.AnnAssign):
            value = s.value
            targets = s.targets if isinstance(s, ast.Assign) else [s.target]
            if isinstance(value, ast.Call) and self.bot_root(mod, value, local_bot):
                local_bot.update(t.id for t in targets if isinstance(t, ast.Name))
            return (ex(value) if value is not None else 0), NEG
        total = sum(ex(child) for child in ast.iter_child_nodes(s) if isinstance(child, ast.expr))
        return total, NEG

    def bot_root(self, mod: _Module, node: object, local_bot: set[str]) -> str | None:
        """What a call chain starts from: a bot.* object, a local made from one, `svc.<x>` (not chat); else None."""

        chain: list[str] = []
        while True:
            if isinstance(node, ast.Call):
                node = node.func
            elif isinstance(node, ast.Attribute):
                chain.append(node.attr)
                node = node.value
            else:
                break
        if not isinstance(node, ast.Name):
            return None
        chain.reverse()
        if node.id in mod.bot_names:
            target = mod.bot_names[node.id]
            if target.startswith(PURE_BOT):
                return None
            return ".".join([target, *chain])
        if node.id in local_bot:
            return node.id + "." + ".".join(chain)
        services = (
            chain[1:] if node.id == "ctx" and chain[:1] == ["svc"] else chain if node.id == "svc" else None
        )
        if services is None or len(services) != 1:
            return None  # not a Services call, or svc.chat.* / svc.render.* (answering, rendering)
        return "svc." + services[0]

    def expr(self, mod: _Module, e: object, sites: set[str], local_bot: set[str]) -> float:

        total = 0.0
        awaited: set[int] = set()
        for node in ast.walk(e):  # type: ignore[arg-type]
            if isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
                awaited.add(id(node.value))
        for node in ast.walk(e):  # type: ignore[arg-type]
            if isinstance(node, ast.Lambda) or not isinstance(node, ast.Call):
                continue
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "ctx"
            ):
                if func.attr in CONTEXT_METHODS:
                    continue
            target = self.bot_root(mod, node, local_bot)
            if target is not None:
                counts = id(node) in awaited
                if not counts and target.startswith("bot."):
                    module, _, attr = target.rpartition(".")
                    try:
                        obj = getattr(importlib.import_module(module), attr)
                        counts = inspect.iscoroutinefunction(obj)
                    except (ImportError, AttributeError):
                        counts = False
                if counts:
                    total += 1
                    sites.add(f"{mod.rel}:{node.lineno}: {target}")
                continue
            helper = self.helper(mod, func)
            if helper is not None:
                n, reached = self.function(*helper)
                total += n
                sites.update(reached)
            # A handler's function passed as a callback (a flow's `on_result`) runs too: count it once.
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                passed = self.helper(mod, arg) if isinstance(arg, ast.Name) else None
                if passed is not None:
                    n, reached = self.function(*passed)
                    total += n
                    sites.update(reached)
        return total

    def helper(self, mod: _Module, func: object) -> tuple[str, str] | None:

        if isinstance(func, ast.Name):
            if func.id in mod.functions:
                return mod.rel, func.id
            if func.id in mod.handler_names:
                rel, name = mod.handler_names[func.id]
                return (rel, name) if name else None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            imported = mod.handler_names.get(func.value.id)
            if imported is not None and imported[1] is None:
                return imported[0], func.attr
        return None


def _registered_handlers() -> list[tuple[str, str]]:
    """(module file, function name) of every registered listener: the command table's handlers, buttons,
    shortcuts, events, form submits, and the Bolt listeners of handlers/app.py."""

    from handlers import app, registry

    fns = [row.handler for row in app.TABLE.values()]
    fns += [*registry.COMMANDS.values(), *registry.ACTIONS.values(), *registry.SHORTCUTS.values()]
    fns += [*registry.EVENTS.values(), *(v.submit for v in registry.VIEWS.values())]
    found = {(str(Path(inspect.getsourcefile(f) or "").relative_to(ROOT)), f.__name__) for f in fns}
    for node in ast.walk(ast.parse((ROOT / "handlers/app.py").read_text())):
        if isinstance(node, ast.AsyncFunctionDef) and any(
            isinstance(d, ast.Call)
            and isinstance(d.func, ast.Attribute)
            and isinstance(d.func.value, ast.Name)
            and d.func.value.id == "app"
            for d in node.decorator_list
        ):
            found.add(("handlers/app.py", node.name))
    return sorted(found)


def handler_offenders() -> dict[str, list[str]]:
    counter = _Counter()
    out = {}
    for rel, name in _registered_handlers():
        n, sites = counter.function(rel, name)
        fn = counter.module(rel).functions[name]
        if n > 1:
            out[f"{rel}:{fn.lineno}: {name} ({n:.0f} on one path)"] = sorted(sites)
    return out


def test_handlers_make_one_flow_call() -> None:
    """ack → parse → one flow call → render: a handler that calls two domain functions in sequence splits
    one intention between the adapter and the domain (and its transaction in two). Put the sequence in one
    flow that returns a typed result, and render that."""
    offenders = handler_offenders()
    names = {k: k.split(": ", 1)[1].split(" ", 1)[0] for k in offenders}
    unexplained = {k: v for k, v in offenders.items() if names[k] not in MULTI_CALL_ALLOWED}
    report = "\n".join(f"{k}\n    " + "\n    ".join(v) for k, v in unexplained.items())
    assert not unexplained, f"{len(unexplained)} handlers make more than one domain call:\n{report}"
    stale = set(MULTI_CALL_ALLOWED) - set(names.values())
    assert not stale, f"allowed but no longer calling more than once: {sorted(stale)}"
