"""Block Kit sanity checks for chat.postMessage (the limits Slack enforces)."""

from __future__ import annotations

from typing import Any

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150


def _text_of(obj: Any) -> str | None:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return str(obj["text"])
    return None


def block_errors(blocks: Any) -> tuple[str, str] | None:
    """``None`` when valid, else ``(slack error code, human detail)``."""
    if not isinstance(blocks, list):
        return "invalid_blocks_format", "blocks must be a JSON array"
    if len(blocks) > MAX_BLOCKS:
        return "invalid_blocks", f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"
    for index, block in enumerate(blocks):
        where = f"[json-pointer:/blocks/{index}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return "invalid_blocks", f"missing required field: type {where}"
        kind = block["type"]
        text = _text_of(block.get("text"))
        if kind == "section":
            fields = block.get("fields")
            if text is None and not fields:
                return "invalid_blocks", f"must provide either text or fields {where}"
            if text is not None and len(text) > MAX_SECTION_TEXT:
                return (
                    "invalid_blocks",
                    f"must be less than {MAX_SECTION_TEXT + 1} characters {where}/text",
                )
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > MAX_SECTION_FIELDS:
                    return (
                        "invalid_blocks",
                        f"no more than {MAX_SECTION_FIELDS} items allowed {where}/fields",
                    )
                for f_index, item in enumerate(fields):
                    f_text = _text_of(item)
                    if f_text is None or len(f_text) > MAX_FIELD_TEXT:
                        return "invalid_blocks", f"invalid field {where}/fields/{f_index}"
        elif kind == "header" and (text is None or len(text) > MAX_HEADER_TEXT):
            return (
                "invalid_blocks",
                f"must be less than {MAX_HEADER_TEXT + 1} characters {where}/text",
            )
    return None
