"""What the docs state, read against the code that defines it, so the two cannot drift apart:
settings (names, flags, defaults), the client's reconnect window, the notebook section the docs
send readers to, the serve commands and the env they need, limits and versions they quote."""

from __future__ import annotations

import argparse
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from hub3d.config import DEFAULT_DATA_DIR, Settings
from tests.client_helpers import CLIENT_PY, load_client
from tests.servers import REPO

DOCS = [REPO / "README.md", REPO / "SF3D_JUPYTERHUB_QUICKSTART.md", REPO / "client/README.md",
        REPO / "kernel_setup/README.md", *sorted((REPO / "docs").glob("*.md"))]
CODE = [*REPO.glob("hub3d/**/*.py"), CLIENT_PY, *REPO.glob("kernel_setup/*.sh"),
        *REPO.glob("scripts/*.sh"),
        *(p for p in REPO.glob("tests/**/*.py") if p.name != Path(__file__).name)]  # test knobs
PER_MODEL_PYTHON = "HUB3D_PYTHON_<MODEL>"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def flat(text: str) -> str:
    """Whitespace folded, so a phrase matches across a line break."""
    return " ".join(text.split())


def table_rows(text: str) -> dict[str, list[str]]:
    """`| \\`NAME\\` | a | b |` rows of a markdown table: NAME → [a, b]."""
    rows = {}
    for line in text.splitlines():
        if match := re.match(r"\| `([^`]+)` \|(.*)\|\s*$", line):
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    names = [n for n in getattr(alias, "choices", []) if isinstance(n, str) and n.isupper()]
    assert len(names) == 1, (field, alias)
    return names[0]


def shown(value: Any) -> str:
    """A default as the settings table writes it."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, Path):
        return DEFAULT_DATA_DIR if str(value) == DEFAULT_DATA_DIR else str(value)
    return "empty" if value == "" else str(value)


def serve_flags() -> dict[str, str]:
    """Settings field → its `hub3d serve` flag."""
    from hub3d.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    serve = cast(dict[str, argparse.ArgumentParser], sub.choices)["serve"]
    return {a.dest: a.option_strings[0] for a in serve._actions if a.option_strings
            and a.dest != "help"}


def test_the_settings_table_is_every_setting_with_its_flag_and_default() -> None:
    rows = table_rows(read(REPO / "docs/settings.md"))
    fields = {env_name(f): f for f in Settings.model_fields}
    assert set(rows) == set(fields) | {PER_MODEL_PYTHON}
    flags = serve_flags()
    for env, field in fields.items():
        flag, default = rows[env][0], rows[env][1].strip("`").replace(",", "")
        assert flag == (f"`{flags[field]}`" if field in flags else "—"), env
        info = Settings.model_fields[field]
        value = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
        assert default == shown(value), env


def test_every_env_var_the_docs_name_is_one_the_code_reads() -> None:
    code = "\n".join(read(p) for p in CODE)
    named = {n for doc in DOCS for n in re.findall(r"\bHUB3D_[A-Z0-9_]*[A-Z0-9]\b", read(doc))}
    named |= set(re.findall(r"`(MAX_[A-Z_]+|PORT)`", read(REPO / "README.md")))
    missing = {n for n in named if n not in code and not n.startswith("HUB3D_PYTHON_")}
    assert not missing, f"the docs name variables nothing reads: {sorted(missing)}"
    assert '"HUB3D_PYTHON_" + ' in read(REPO / "hub3d/models/catalog.py")


def test_hub3d_python_model_names_the_python_of_that_models_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hub3d.models.catalog import Catalog
    from hub3d.workers.pool import WorkerPool

    python = str(tmp_path / "env" / "bin" / "python")
    monkeypatch.setenv(PER_MODEL_PYTHON.replace("<MODEL>", "INFLATE"), python)
    settings = Settings.model_validate({"models": "inflate", "data_dir": tmp_path})
    pool = WorkerPool(settings, catalog=Catalog.build(settings.models, settings.data_dir),
                      gpu_lister=list)
    assert pool.describe("inflate")["python"] == python


def test_the_reconnect_window_the_docs_give_is_the_clients() -> None:
    client = load_client()
    window = inspect.signature(client.SF3DClient).parameters["reconnect_s"].default
    help_text = subprocess.run([sys.executable, str(CLIENT_PY), "--help"], capture_output=True,
                               text=True, check=True).stdout
    cli = re.search(r"^\s+--reconnect SECONDS.*?\(default (\d+)\)", help_text, re.M | re.S)
    assert cli and float(cli.group(1)) == window
    said = re.findall(r"reconnected to for up to (\d+) s", flat(read(REPO / "client/README.md")))
    said += re.findall(r"waits up to `--reconnect` \((\d+) s\)", read(REPO / "docs/reliability.md"))
    assert len(said) == 2 and {float(s) for s in said} == {window}, said


def commands_section() -> tuple[str, str]:
    """(number, title) of the notebook section whose cell prints the client commands."""
    cells = json.loads(read(REPO / "sf3d_api_server.ipynb"))["cells"]
    heading: tuple[str, str] | None = None
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and (m := re.match(r"## (\d+)\. (.+)", source)):
            heading = (m.group(1), m.group(2).strip())
        elif cell["cell_type"] == "code" and "format_ways_in(" in source:
            assert heading is not None
            return heading
    raise AssertionError("no cell prints the ways in")


def test_the_docs_send_readers_to_the_section_that_prints_the_commands() -> None:
    number, title = commands_section()
    first = "".join(json.loads(read(REPO / "sf3d_api_server.ipynb"))["cells"][0]["source"])
    assert f"Section {number}, *{title}*, prints the ready-to-paste commands" in first
    page = flat(read(REPO / "docs/page.md"))
    assert f"section {number} of the notebook (*{title}*) prints" in page
    # cells have no stable numbers (execution counts vary, markdown cells count or not): none cited
    for doc in [*DOCS, REPO / "sf3d_api_server.ipynb"]:
        assert not re.search(r"\b[Cc]ell \d", read(doc)), doc


def test_the_readme_serves_sf3d_only_from_the_env_its_recipe_builds() -> None:
    from hub3d.models.registry import load_backend_class

    recipe = read(REPO / "kernel_setup/setup_sf3d_kernel.sh")
    env_dir = re.search(r'ENV_DIR="\$\{HUB3D_ENV:-\$HOME/([^}]+)\}"', recipe)
    assert env_dir
    recipe_python = f"~/{env_dir.group(1)}/bin/python -m hub3d"
    readme = read(REPO / "README.md")
    serving = readme[readme.index("## Serving"):]
    lines = [ln for ln in serving.splitlines() if re.search(r"hub3d serve .*--models", ln)]
    assert any(ln.startswith(recipe_python) for ln in lines), lines
    for line in lines:
        models = re.search(r"--models (\S+)", line).group(1).split(",")  # type: ignore[union-attr]
        if not line.startswith(recipe_python):  # the `server` extra's env: CPU-only backends
            kinds = {m: load_backend_class(m).device_kind for m in models}
            assert set(kinds.values()) == {"cpu"}, (line, kinds)


def test_limits_and_versions_the_docs_quote_are_the_codes(tmp_path: Path) -> None:
    from hub3d.api.app import create_app
    from hub3d.api.viewer import VIEWER_VERSION
    from hub3d.models.base import GenerateParams

    spec = create_app(Settings.model_validate({"data_dir": tmp_path})).openapi()
    api = flat(read(REPO / "docs/api.md"))
    limit = spec["paths"]["/jobs"]["get"]["parameters"][0]["schema"]["default"]
    assert f"GET /jobs?limit={limit}" in api
    (key,) = [p for p in spec["paths"]["/generate"]["post"]["parameters"]
              if p["name"] == "Idempotency-Key"]
    bounds = key["schema"]["anyOf"][0]
    assert f"({bounds['minLength']}–{bounds['maxLength']} characters" in api
    assert f"(default {GenerateParams.model_fields['seed'].default})" in api
    assert f"@google/model-viewer@{VIEWER_VERSION}" in read(REPO / "docs/page.md")
    window = Settings.model_fields["activity_window_s"].default / 60
    assert f"for {window:.0f} minutes after the last request" in flat(
        read(REPO / "docs/troubleshooting.md"))
    assert f"a request came in the last {window:.0f} min" in read(REPO / "docs/reliability.md")


def test_test_counts_in_the_docs_name_their_file_and_match_it() -> None:
    for doc in DOCS:
        text = flat(read(doc))
        for match in re.finditer(r"\b(\d[\d,]*) (?:tests|passed)\b", text):
            named = re.search(r"`(tests/[\w/]+\.py)` \($", text[:match.start()])
            assert named, f"{doc.name}: '{match.group(0)}' counts no file (say what, not how many)"
            run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m",
                                  "", named.group(1)], cwd=REPO, capture_output=True, text=True)
            found = re.search(r"(\d+) tests? collected", run.stdout)
            assert found and found.group(1) == match.group(1).replace(",", ""), (
                f"{doc.name} says {match.group(0)} in {named.group(1)}: {run.stdout[-300:]}")
