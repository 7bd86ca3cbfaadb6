"""The JSON Schema of the event `ibwatch` sends (`event-v1.schema.json`), shipped so
receivers can validate and generate code from it.

The file is generated from `watcher.model.Transition` and checked against it by
`tests/test_event_schema.py`; edit the model, never the file by hand.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

EVENT_SCHEMA_FILE = "event-v1.schema.json"


def event_schema() -> dict[str, Any]:
    """The event's JSON Schema (draft 2020-12), freshly parsed: the caller may change it."""
    schema: dict[str, Any] = json.loads(
        files(__name__).joinpath(EVENT_SCHEMA_FILE).read_text(encoding="utf-8")
    )
    return schema
