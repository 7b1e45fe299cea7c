"""Writes the JSON Schema of every event and definition into ``schemas/json/``.

Run ``python -m schemas.generate``; a test fails when the checked-in files are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import TypeAdapter

from schemas.definitions import Document
from schemas.registry import EVENT_MODELS

JSON_DIR = Path(__file__).parent / "json"


def rendered() -> dict[str, str]:
    """File name -> JSON text, for every schema."""
    files: dict[str, str] = {}
    for event_type, model in sorted(EVENT_MODELS.items()):
        files[f"{event_type}.schema.json"] = _dump(model.model_json_schema(by_alias=True))
    files["definition-document.schema.json"] = _dump(
        TypeAdapter(Document).json_schema(by_alias=True)
    )
    return files


def _dump(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    JSON_DIR.mkdir(exist_ok=True)
    wanted = rendered()
    for stale in JSON_DIR.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        (JSON_DIR / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(wanted)} schemas to {JSON_DIR.name}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
