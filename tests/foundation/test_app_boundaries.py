"""Each app owns its pages: the import rules between the three apps, read from the source with ast.

- No module of one app imports another app's views, pages or forms.
- No page module (views.py, pages.py) imports another app's models.
- Monitoring imports from the gateway only its provider configuration (what the probes need).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("gateway", "billing", "monitoring")
PAGE_MODULES = ("views", "pages")
UI_MODULES = ("views", "pages", "forms")
# What monitoring may take from the gateway: the provider configurations its probes read.
MONITORING_FROM_GATEWAY = {
    "gateway.providers": {"provider_configs"},
    "gateway.providers.base": {
        "ProviderConfig",
        "WIRE_ANTHROPIC",
        "WIRE_DEMO",
        "WIRE_GEMINI",
        "WIRE_OPENAI_COMPAT",
    },
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, set[str], int]]:
    """(absolute module, imported names, line) per import statement, nested ones included."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, set(), node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, {alias.name for alias in node.names}, node.lineno))
    return found


def _app_sources(app: str) -> list[Path]:
    return [p for p in sorted((ROOT / app).rglob("*.py")) if "migrations" not in p.parts]


def _statement_problem(app: str, is_page: bool, target: str, names: set[str]) -> str | None:
    top = target.split(".")[0]
    if top == app or top not in APPS:
        return None
    # `from gateway import forms` reaches gateway.forms as surely as `from gateway.forms import X`.
    reached = [target, *(f"{target}.{name}" for name in names)]
    subs = {m.split(".")[1] for m in reached if m.count(".") >= 1}
    if subs & set(UI_MODULES):
        return f"another app's {sorted(subs & set(UI_MODULES))[0]}"
    if is_page and "models" in subs:
        return "a page reads another app's models"
    if app == "monitoring" and top == "gateway":
        allowed = MONITORING_FROM_GATEWAY.get(target)
        if allowed is None or not names or not names <= allowed:
            return "monitoring takes only provider configs from the gateway"
    return None


def _violations() -> list[str]:
    problems = []
    for app in APPS:
        for path in _app_sources(app):
            is_page = path.parent == ROOT / app and path.stem in PAGE_MODULES
            for target, names, line in _imports(path):
                problem = _statement_problem(app, is_page, target, names)
                if problem:
                    problems.append(
                        f"{path.relative_to(ROOT)}:{line} imports {target} {sorted(names)}: {problem}"
                    )
    return problems


def test_apps_keep_to_their_own_pages():
    assert _violations() == []


@pytest.mark.parametrize(
    ("app", "filename", "source", "expected"),
    [
        ("monitoring", "views.py", "from gateway.models import ApiKey\n", "another app's models"),
        ("monitoring", "views.py", "from gateway.forms import ApiKeyLimitsForm\n", "another app's forms"),
        ("billing", "services.py", "from gateway import pages\n", "another app's pages"),
        ("gateway", "client.py", "def f():\n    from monitoring.views import staff\n", "another app's views"),
        ("monitoring", "selectors.py", "from gateway.catalog import catalog_list\n", "only provider configs"),
        ("monitoring", "probes.py", "from gateway.providers import provider_call\n", "only provider configs"),
    ],
)
def test_the_rule_catches_each_kind_of_reach(tmp_path, monkeypatch, app, filename, source, expected):
    # A copy of the tree with one offending module added: the checker must name it.
    fake_root = tmp_path / "tree"
    for name in APPS:
        (fake_root / name).mkdir(parents=True)
        (fake_root / name / "__init__.py").write_text("")
    (fake_root / app / filename).write_text(source)
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", fake_root)
    problems = _violations()
    assert len(problems) == 1 and expected in problems[0], problems


def test_the_allowed_imports_pass(tmp_path, monkeypatch):
    fake_root = tmp_path / "tree"
    for name in APPS:
        (fake_root / name).mkdir(parents=True)
        (fake_root / name / "__init__.py").write_text("")
    (fake_root / "monitoring" / "probes.py").write_text(
        "from gateway.providers.base import WIRE_DEMO, ProviderConfig\n"
        "def f():\n    from gateway.providers import provider_configs\n"
    )
    (fake_root / "monitoring" / "views.py").write_text("from billing.selectors import balance_display_get\n")
    (fake_root / "gateway" / "pages.py").write_text("from .models import RoutingRule\nfrom .forms import F\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", fake_root)
    assert _violations() == []


@pytest.mark.parametrize(
    ("url", "module"),
    [
        ("/", "monitoring.views"),
        ("/calls/1/", "monitoring.views"),
        ("/staff/", "monitoring.views"),
        ("/transactions/", "billing.views"),
        ("/topup/", "billing.views"),
        ("/topup/success/", "billing.views"),
        ("/topup/cancel/", "billing.views"),
        ("/keys/", "gateway.pages"),
        ("/keys/1/revoke/", "gateway.pages"),
        ("/keys/1/limits/", "gateway.pages"),
        ("/playground/", "gateway.pages"),
    ],
)
def test_each_page_is_served_by_the_app_that_owns_its_data(url, module):
    from django.urls import resolve

    assert resolve(url).func.__module__ == module
