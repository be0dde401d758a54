"""The docs say what the code does: their lists, commands and pictures are held to their sources.

`mkdocs build --strict` (in the test command) catches broken links, missing anchors and pages
left out of the navigation; these tests catch a page that is well formed but no longer true."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import REPO, make_workflow_project, run

from gaitflow.cli import build_parser
from gaitflow.config import schema
from gaitflow.losses import registry
from gaitflow.models import available, create_model

DOCS = REPO / "docs"
README = REPO / "README.md"


def _page(name: str) -> str:
    return (DOCS / name).read_text()


def _table_after(text: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header row starts with ``header``, split into cells."""
    block = text[text.index(header) :].split("\n\n")[0].splitlines()[2:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in block]


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def _marked_command(marker: str) -> str:
    text = README.read_text()
    return _bash_blocks(text[text.index(f"<!-- {marker} -->") :])[0].strip()


def test_the_backbones_page_lists_the_registry_with_true_parameter_counts():
    rows = _table_after(_page("backbones.md"), "| name | model |")
    names = [row[0].strip("`") for row in rows]
    assert set(names) == set(available())
    for name, row in zip(names, rows):
        counted = sum(
            p.numel() for p in create_model(name, frame_shape=(64, 44), width=1.0, num_classes=74).parameters()
        )
        stated = int(re.match(r"[\d,]+", row[3]).group(0).replace(",", ""))
        assert stated == counted, name


def test_the_components_page_lists_the_registered_loss_components():
    rows = _table_after(_page("components.md"), "| role | what it returns |")
    listed = {name.strip("` ") for row in rows for name in row[2].split("(")[0].split(",")}
    assert listed == set(registry.names())


def test_the_getting_started_page_has_the_readmes_two_commands():
    blocks = [b.strip() for b in _bash_blocks(_page("getting-started.md"))]
    assert _marked_command("main-command") in blocks
    assert _marked_command("test-command") in blocks
    assert "mkdocs build --strict" in _marked_command("test-command")


def test_the_steps_table_lists_every_subcommand():
    rows = _table_after(_page("getting-started.md"), "| command | reads | writes |")
    listed = {row[0].strip("`").split()[1] for row in rows}
    parser = build_parser()
    commands = set(next(a for a in parser._actions if a.dest == "command").choices)
    assert listed == commands


def test_the_configuration_page_names_every_section_of_params():
    rows = _table_after(_page("configuration.md"), "| key | what it sets |")
    assert {row[0].strip("`") for row in rows} == set(schema()["properties"])


def test_the_grid_shown_is_the_default_grid():
    text = _page("workflow.md")
    shown = yaml.safe_load(re.search(r"\*\*The grid\*\*.*?```yaml\n(.*?)```", text, re.S).group(1))
    assert shown == {"grid": yaml.safe_load((REPO / "params.yaml").read_text())["grid"]}


def test_the_job_dag_picture_is_the_default_grids(tmp_path):
    """The picture is `snakemake --dag mermaid-js` on the default params.yaml, pasted as it prints."""
    project = make_workflow_project(tmp_path / "project", overrides=[])
    dag = run(["snakemake", "--dag", "mermaid-js"], project).stdout.strip()
    text = _page("workflow.md")
    picture = re.search(r"```mermaid\n(---\ntitle: DAG.*?)```", text, re.S).group(1).strip()
    assert picture == dag, "docs/workflow.md: regenerate the job DAG with `snakemake --dag mermaid-js`"


def test_every_module_is_in_the_api_reference_once():
    modules = set()
    for path in (REPO / "gaitflow").rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] != "__main__":
            modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    listed = re.findall(r"^::: (\S+)$", "\n".join(p.read_text() for p in (DOCS / "reference").glob("*.md")), re.M)
    assert len(listed) == len(set(listed))
    assert set(listed) == modules


def _nav_pages(nav) -> list[str]:
    pages = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_is_in_the_navigation_once():
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)  # leaves !!python tags alone
    pages = _nav_pages(config["nav"])
    assert len(pages) == len(set(pages))
    assert set(pages) == {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}


def test_the_readme_is_a_front_page_whose_tables_agree_with_the_docs():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    glimpse = text[text.index("| backbone | loss | variant |") :].split("\n\n")[0].splitlines()
    tables = _page("tables.md")
    for row in glimpse:
        assert row in tables, row
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (REPO / link).is_file(), link


def _requirement_names(specs) -> set[str]:
    return {re.split(r"[<>=\[ ;]", spec, maxsplit=1)[0].lower() for spec in specs}


@pytest.mark.parametrize("page", [README, DOCS / "development.md"])
def test_the_dependency_tables_say_what_every_dependency_is_for(page):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    needed = _requirement_names(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        needed |= _requirement_names(extra)
    rows = _table_after(page.read_text(), "| package | what for |")
    listed = {name.strip().lower() for row in rows for name in row[0].split("(")[0].split(",")}
    assert needed <= listed, needed - listed
