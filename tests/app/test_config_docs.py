"""docs/CONFIGURATION.md cannot drift: its generated part equals what the commands give now,
its example files are files ppsp accepts, and start-up reads no file it does not need to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ppsp.app.cli import main
from ppsp.app.cli.config import PEER_TABLE, check_document, schema_of
from ppsp.app.cli.reference import SAMPLES, default_of, example_file, generated, rewrite

DOC = Path(__file__).resolve().parents[2] / "docs" / "CONFIGURATION.md"


def test_the_generated_part_is_up_to_date() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert rewrite(text, main) == text, (
        "docs/CONFIGURATION.md is out of date: run "
        "python -m ppsp.app.cli.reference docs/CONFIGURATION.md"
    )
    assert generated(main) in text


def test_every_key_of_every_command_is_in_the_document() -> None:
    text = DOC.read_text(encoding="utf-8")
    for path, table in schema_of(main).tables.items():
        title = "[" + ".".join(path) + "]" if path else "Top level"
        assert f"### {title}" in text, path
        for key in table:
            assert f"`{key}`" in text, (path, key)


def uncommented(example: str) -> str:
    """The example file with its ``# key = value`` lines made live."""
    return re.sub(r"^# ([a-z][a-z0-9-]* = )", r"\1", example, flags=re.MULTILINE)


def test_the_full_example_is_a_file_ppsp_accepts_with_every_key_set() -> None:
    import tomllib

    from ppsp.app.cli.config import PEER_COMMANDS

    schema = schema_of(main)
    document = tomllib.loads(uncommented(example_file(schema)))
    check_document(schema, document, "example")
    for path, table in schema.tables.items():
        layers = [document]
        if path == (PEER_TABLE,) or (len(path) == 1 and path[0] in PEER_COMMANDS):
            layers.append(document[PEER_TABLE])
        inner = document
        for name in path:
            inner = inner[name]
        layers.append(inner)
        present = {key for layer in layers for key, v in layer.items() if not isinstance(v, dict)}
        assert set(table) <= present, (path, set(table) - present)


def test_keys_without_a_default_have_an_example_value() -> None:
    schema = schema_of(main)
    for path, table in schema.tables.items():
        for key, setting in table.items():
            if default_of(setting) is None:
                assert key in SAMPLES or ".".join((*path, key)) in SAMPLES, (path, key)


def test_the_documents_toml_snippets_are_accepted() -> None:
    import tomllib

    schema = schema_of(main)
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        check_document(schema, tomllib.loads(uncommented(block)), "docs/CONFIGURATION.md")


@pytest.mark.parametrize("with_file", [False, True])
def test_tomllib_is_imported_only_when_a_file_exists(with_file: bool, tmp_path: Path) -> None:
    from app.test_startup import modules_after

    home = tmp_path / "xdg"
    if with_file:
        (home / "ppsp").mkdir(parents=True)
        (home / "ppsp" / "config.toml").write_text("[keygen]\n", encoding="utf-8")
    names = modules_after(
        f"""
        import contextlib, os
        os.environ["XDG_CONFIG_HOME"] = {str(home)!r}
        from ppsp.app.cli import main
        with contextlib.suppress(SystemExit):
            main(["keygen", "--out", {str(tmp_path / "no" / "k")!r}])
        """
    )
    assert ("tomllib" in names) is with_file
    assert "orjson" not in names  # the text log format needs no JSON
