"""Definition files on disk -> raw documents, each remembering its file, index and lines.

YAML (multi-document, ``---``) or JSON (one object or an array of objects); a folder
means its ``*.yaml``, ``*.yml`` and ``*.json`` files in name order (sub-folders with
``recursive``). Errors carry the file and line/column, so people can fix them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SUFFIXES = (".yaml", ".yml", ".json")
Path_ = tuple[str | int, ...]


class SourceError(ValueError):
    """A file that cannot be read or parsed; the message names file, line and column."""


@dataclass(frozen=True)
class SourceDocument:
    file: Path
    index: int  # 1-based position of the document within its file
    data: Any
    line: int = 1  # where the document starts
    lines: dict[Path_, int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, path: Path_) -> int:
        """The line of the deepest known node on ``path`` (a field that is missing has none)."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return self.line

    @property
    def where(self) -> str:
        return f"{self.file}: document {self.index}"


def find_files(path: Path, recursive: bool = False) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        pattern = "**/*" if recursive else "*"
        return sorted(
            p
            for p in path.glob(pattern)
            if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
        )
    raise SourceError(f"{path}: no such file or folder")


def load_path(path: Path, recursive: bool = False) -> list[SourceDocument]:
    files = find_files(path, recursive)
    documents = [doc for file in files for doc in load_file(file)]
    if not documents:
        raise SourceError(f"{path}: no documents found (looked for {', '.join(SUFFIXES)} files)")
    return documents


def load_file(file: Path) -> list[SourceDocument]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{file}: cannot read: {exc}") from exc
    if file.suffix.lower() == ".json":
        return _load_json(file, text)
    return load_yaml_text(file, text)


def _load_json(file: Path, text: str) -> list[SourceDocument]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{file}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    items = data if isinstance(data, list) else [data]
    return [SourceDocument(file, i, item) for i, item in enumerate(items, start=1)]


def load_yaml_text(file: Path, text: str) -> list[SourceDocument]:
    loader = yaml.SafeLoader(text)
    documents: list[SourceDocument] = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            index += 1
            if node is None:
                continue
            data = loader.construct_document(node)
            if data is None:  # an empty document, e.g. a trailing '---'
                continue
            lines: dict[Path_, int] = {}
            _index_lines(node, (), lines)
            documents.append(SourceDocument(file, index, data, node.start_mark.line + 1, lines))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise SourceError(f"{where}: invalid YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise SourceError(f"{file}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return documents


def _index_lines(node: yaml.Node, path: Path_, out: dict[Path_, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                _index_lines(value, (*path, key.value), out)
                out[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, i), out)
