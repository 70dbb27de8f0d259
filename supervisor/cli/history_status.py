"""``supervisor status``'s run-history section: Lambda seconds wasted, and what was learned.

With a history table (``--history-table``, or the FDL's ``history.table``), status scans
it for the function's items (one per script, image and memory size) and shows, for each,
the Lambda seconds its runs took and the part spent on records that timed out and went
on to Batch ("wasted"), then per size band the runs by outcome and their typical
duration (the median duration bucket's floor: durations are kept to about 9 %).
"""
from __future__ import annotations

import argparse
from typing import Any, Mapping, Optional

from ..errors import error_code
from ..history import History, HistoryStore
from ..history.bands import about_bytes, band_size, bucket_floor
from .output import Column, seconds, table, when

__all__ = ["add_arguments", "history_view", "history_text"]

BAND_COLUMNS: tuple[Column, ...] = (
    ("inputs", "inputs"), ("runs", "runs"), ("completed", "completed"), ("failed", "failed"),
    ("timed_out", "timed out"), ("typical", "typical duration"),
    ("timed_out_after", "timed out after"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--history-table``."""
    parser.add_argument("--history-table", metavar="TABLE",
                        help="the run-history table (default: the FDL's history.table)")


def _item_view(item_id: str, history: History) -> dict[str, Any]:
    bands = []
    for band in history.bands.values():
        typical = band.median_bucket("cf")
        timed_out = band.least_bucket("t")
        bands.append({
            "band": band.band, "inputs": f"~{about_bytes(band_size(band.band))}",
            "runs": band.total(), "completed": band.total("c"), "failed": band.total("f"),
            "timed_out": band.total("t"),
            "typical_s": None if typical is None else round(bucket_floor(typical), 3),
            "timed_out_after_s": None if timed_out is None else round(bucket_floor(timed_out), 3),
        })
    return {"id": item_id, "script": history.text("script"), "image": history.text("image"),
            "memory": history.number("memory"), "updated": history.number("updated"),
            "runs": history.runs, "lambda_s": round(history.lambda_seconds, 3),
            "wasted_s": round(history.wasted_seconds, 3), "bands": bands}


def history_view(dynamodb: Any, table: str, name: str) -> dict[str, Any]:
    """What the history table holds about function ``name`` (newest script first)."""
    from botocore.exceptions import ClientError

    store = HistoryStore(table, lambda _seconds: dynamodb, expires_after_seconds=0)
    try:
        items = [_item_view(item_id, history) for item_id, history in store.scan(name, 0.0)]
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        return {"table": table, "found": False, "items": []}
    items.sort(key=lambda item: item["updated"] or 0, reverse=True)
    return {"table": table, "found": True, "items": items,
            "runs": sum(i["runs"] for i in items),
            "lambda_s": round(sum(i["lambda_s"] for i in items), 3),
            "wasted_s": round(sum(i["wasted_s"] for i in items), 3)}


def _when(value: Optional[float]) -> str:
    return when(value) if value is not None else "-"


def history_text(view: Mapping[str, Any]) -> str:
    """The run-history section as text."""
    table_name = view["table"]
    if not view["found"]:
        return f"no run-history table {table_name}"
    if not view["items"]:
        return f"no run history of this function in {table_name}"
    lines = [f"run history in {table_name}: {view['runs']} Lambda runs, "
             f"{seconds(view['lambda_s'])} in Lambda, {seconds(view['wasted_s'])} of it wasted "
             "on records that timed out and ended on Batch"]
    for item in view["items"]:
        memory = f", {item['memory']:g} MB" if item["memory"] else ""
        lines.append(f"\nscript {item['script']} ({item['image'] or 'no image'}{memory}), last "
                     f"run {_when(item['updated'])}: {item['runs']} runs, "
                     f"{seconds(item['wasted_s'])} wasted")
        rows = [dict(band, typical=seconds(band["typical_s"]),
                     timed_out_after=("-" if band["timed_out_after_s"] is None
                                      else f"≥ {seconds(band['timed_out_after_s'])}"))
                for band in item["bands"]]
        lines.append(table(rows, BAND_COLUMNS))
    return "\n".join(lines)
