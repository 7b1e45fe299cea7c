from __future__ import annotations

from pathlib import Path

import pytest

from services.control.sources import SourceError, load_file, load_path

ACCOUNT = """apiVersion: smsflow/v1
kind: Account
metadata: {id: acme}
spec: {sender: "+358451234567"}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_multi_document_yaml_keeps_index_and_start_line(tmp_path: Path) -> None:
    file = write(tmp_path / "a.yaml", f"{ACCOUNT}---\n---\n# comment only\n---\n{ACCOUNT}")
    docs = load_file(file)
    assert [d.index for d in docs] == [1, 4]  # empty documents are skipped, not renumbered
    assert docs[0].line == 1
    assert docs[1].line == 9
    assert docs[1].data["metadata"] == {"id": "acme"}


def test_lines_of_nested_fields_are_known(tmp_path: Path) -> None:
    file = write(tmp_path / "a.yaml", ACCOUNT)
    (doc,) = load_file(file)
    assert doc.line_of(("spec", "sender")) == 4
    assert doc.line_of(("metadata", "id")) == 3
    # A missing field points at its nearest known parent.
    assert doc.line_of(("spec", "subscription_types", 0)) == 4


def test_folder_reads_yaml_and_json_in_name_order_but_not_subfolders(tmp_path: Path) -> None:
    write(tmp_path / "b.yml", ACCOUNT)
    write(tmp_path / "a.json", '[{"kind": "Account"}, {"kind": "Workflow"}]')
    write(tmp_path / "notes.txt", "not a definition")
    write(tmp_path / ".hidden.yaml", ACCOUNT)
    write(tmp_path / "sub" / "c.yaml", ACCOUNT)
    docs = load_path(tmp_path)
    assert [(d.file.name, d.index) for d in docs] == [("a.json", 1), ("a.json", 2), ("b.yml", 1)]
    recursive = load_path(tmp_path, recursive=True)
    assert [d.file.name for d in recursive] == ["a.json", "a.json", "b.yml", "c.yaml"]


def test_broken_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    file = write(tmp_path / "bad.yaml", f"{ACCOUNT}---\nkind: Account\nspec: {{sender: [1, 2}}\n")
    with pytest.raises(SourceError) as info:
        load_file(file)
    message = str(info.value)
    assert message.startswith(f"{file}:7:")
    assert "invalid YAML" in message


def test_broken_json_names_file_line_and_column(tmp_path: Path) -> None:
    file = write(tmp_path / "bad.json", '{\n  "kind": "Account",\n  "spec": }\n')
    with pytest.raises(SourceError, match=r"bad\.json:3:11: invalid JSON"):
        load_file(file)


def test_missing_path_and_empty_folder_are_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        load_path(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no documents found"):
        load_path(tmp_path / "empty")


def test_examples_folder_loads_only_definitions() -> None:
    examples = Path(__file__).resolve().parents[3] / "examples"
    kinds = {d.data["kind"] for d in load_path(examples)}
    assert kinds == {"Account", "SmsMessage", "Workflow"}
