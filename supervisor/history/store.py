"""History items in DynamoDB: read one, add runs to one, list a function's.

The table is the contract's: string partition key ``id``, TTL on ``expiration``. An item
expires ``expires_after_seconds`` after its first run, so what was learned is never older
than that; an expired item that DynamoDB has not deleted yet is read as no history and
replaced by the next write. Adding runs is one conditional ``UpdateItem`` whose counters
are ``ADD``-ed (concurrent writers never lose each other's runs); its condition, that the
item is not expired, fails only when it must be replaced, which a conditional
``PutItem`` does. Every call takes the seconds it may last: the client's timeouts.

Botocore's errors go to the caller (history is advisory: see :mod:`.runtime`).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..errors import error_code
from .model import ID_PREFIX, History, HistoryKey, Observation, Value, counter_increments

__all__ = ["HistoryStore", "item_values"]

_CONDITION_FAILED = "ConditionalCheckFailedException"


def item_values(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Value]:
    """A low-level DynamoDB item as plain values (numbers and strings; others are left out)."""
    out: dict[str, Value] = {}
    for name, typed in item.items():
        if "N" in typed:
            number = float(typed["N"])
            out[name] = int(number) if number.is_integer() else number
        elif "S" in typed:
            out[name] = str(typed["S"])
    return out


def _number(value: float) -> dict[str, str]:
    return {"N": repr(int(value)) if float(value).is_integer() else repr(round(value, 3))}


class HistoryStore:
    """One table of run history; ``client(seconds)`` gives a DynamoDB client whose calls
    give up after about ``seconds``."""

    def __init__(self, table: str, client: Callable[[float], Any], *,
                 expires_after_seconds: int, now: Callable[[], float] = time.time) -> None:
        self.table = table
        self._client = client
        self._expires_after = expires_after_seconds
        self._now = now

    def read(self, item_id: str, seconds: float) -> History:
        """The history of ``item_id`` (empty when there is none or it has expired)."""
        answer = self._client(seconds).get_item(TableName=self.table,
                                                Key={"id": {"S": item_id}})
        values = item_values(answer.get("Item") or {})
        if not values or self._expired(values):
            return History()
        return History.from_attributes(values)

    def add(self, item_id: str, key: HistoryKey, observations: Sequence[Observation],
            seconds: float) -> None:
        """Count ``observations`` in ``item_id``'s history (one UpdateItem, unless the item
        has expired and is replaced)."""
        from botocore.exceptions import ClientError

        increments = counter_increments(list(observations))
        client = self._client(seconds)
        for attempt in range(2):
            try:
                self._update(client, item_id, key, increments)
                return
            except ClientError as exc:
                if error_code(exc) != _CONDITION_FAILED or attempt:
                    raise
            try:  # the item has expired: a fresh one replaces it
                self._replace(client, item_id, key, increments)
                return
            except ClientError as exc:
                if error_code(exc) != _CONDITION_FAILED:
                    raise
            # another writer replaced it first: add to theirs

    def scan(self, function: str, seconds: float) -> Iterator[tuple[str, History]]:
        """Every unexpired history item of ``function`` (a scan: for the CLI, not Lambda)."""
        paginator = self._client(seconds).get_paginator("scan")
        pages = paginator.paginate(
            TableName=self.table, FilterExpression="begins_with(#id, :prefix)",
            ExpressionAttributeNames={"#id": "id"},
            ExpressionAttributeValues={":prefix": {"S": f"{ID_PREFIX}:{function}:"}})
        for page in pages:
            for item in page.get("Items", []):
                values = item_values(item)
                if not self._expired(values):
                    yield str(values.get("id", "")), History.from_attributes(values)

    def _expired(self, values: Mapping[str, Value]) -> bool:
        expiration = values.get("expiration")
        return isinstance(expiration, (int, float)) and expiration <= self._now()

    def _described(self, key: HistoryKey, now: float) -> dict[str, dict[str, str]]:
        return {"function": {"S": key.function}, "script": {"S": key.digest},
                "image": {"S": key.image}, "memory": _number(key.memory),
                "updated": _number(int(now))}

    def _update(self, client: Any, item_id: str, key: HistoryKey,
                increments: Mapping[str, float]) -> None:
        now = self._now()
        names: dict[str, str] = {"#id": "id", "#ex": "expiration"}
        values: dict[str, dict[str, str]] = {
            ":now": _number(int(now)), ":ex": _number(int(now) + self._expires_after)}
        adds = []
        for number, (name, amount) in enumerate(sorted(increments.items())):
            names[f"#a{number}"] = name
            values[f":a{number}"] = _number(amount)
            adds.append(f"#a{number} :a{number}")
        sets = ["#ex = if_not_exists(#ex, :ex)"]
        for number, (name, value) in enumerate(self._described(key, now).items()):
            names[f"#d{number}"] = name
            values[f":d{number}"] = value
            sets.append(f"#d{number} = :d{number}")
        client.update_item(
            TableName=self.table, Key={"id": {"S": item_id}},
            UpdateExpression=f"ADD {', '.join(adds)} SET {', '.join(sets)}",
            ConditionExpression="attribute_not_exists(#id) OR #ex > :now",
            ExpressionAttributeNames=names, ExpressionAttributeValues=values)

    def _replace(self, client: Any, item_id: str, key: HistoryKey,
                 increments: Mapping[str, float]) -> None:
        now = self._now()
        item = {"id": {"S": item_id}, "expiration": _number(int(now) + self._expires_after),
                **self._described(key, now),
                **{name: _number(amount) for name, amount in increments.items()}}
        client.put_item(
            TableName=self.table, Item=item,
            ConditionExpression="attribute_not_exists(#id) OR attribute_not_exists(#ex) "
                                "OR #ex <= :now",
            ExpressionAttributeNames={"#id": "id", "#ex": "expiration"},
            ExpressionAttributeValues={":now": _number(int(now))})
