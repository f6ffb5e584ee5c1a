"""Generate a realistic, deliberately messy dataset and load it with ``COPY``.

``python -m celeryref.mapreduce.generate --name NAME --items N [--seed S] [--replace]``

Items are produced lazily and streamed into ``COPY dataset_items FROM STDIN``
(``copy_expert`` reading a generated stream), so neither the generator nor
Postgres ever holds the whole dataset; the dataset row and its items commit
together. The same ``(N, seed)`` always gives the same items. Roughly 2-5 % of
the values of each field are wrong on purpose (missing, wrong type, negative,
odd case) so that validation and normalization have something to find.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from celeryref.adapters import db
from celeryref.errors import InvalidArguments
from celeryref.observability import logs

logger = logging.getLogger(__name__)

CATEGORIES = ("electronics", "books", "clothing", "grocery", "toys", "sports", "home", "beauty")
REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-northeast", "sa-east")
DOMAINS = ("example.com", "mail.test", "corp.example")
#: Items are created within the year after this instant (seconds since the epoch).
EPOCH = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
#: Characters handed to ``COPY`` per read.
CHUNK = 1 << 16
#: Most items one dataset may have.
MAX_ITEMS = 50_000_000


def make_item(index: int, rng: random.Random) -> dict[str, Any]:
    """Item number ``index``; the noise comes from ``rng`` (same state, same item)."""
    r = rng.random
    item: dict[str, Any] = {"id": index}
    category, x = CATEGORIES[int(r() * len(CATEGORIES))], r()
    if x >= 0.02:  # 2 % missing
        item["category"] = (
            ""
            if x < 0.03
            else 404
            if x < 0.04
            else f" {category.title()} "
            if x < 0.07
            else category
        )
    region, x = REGIONS[int(r() * len(REGIONS))], r()
    if x >= 0.005:
        item["region"] = f"{region.upper()} " if x < 0.035 else region
    amount, x = round(rng.lognormvariate(3.5, 1.0), 2), r()
    if x >= 0.005:
        item["amount"] = (
            None
            if x < 0.015
            else f"{amount:.2f}"
            if x < 0.035
            else -amount
            if x < 0.045
            else amount
        )
    quantity, x = int(r() * 20) + 1, r()
    if x >= 0.005:
        item["quantity"] = str(quantity) if x < 0.015 else 0 if x < 0.02 else quantity
    domain, x = DOMAINS[int(r() * len(DOMAINS))], r()
    if x >= 0.005:
        email = f"user{index}@{domain}"
        item["email"] = (
            email.replace("@", ".") if x < 0.015 else f" {email.upper()}" if x < 0.035 else email
        )
    seconds, x = int(r() * 365 * 86_400), r()
    created = datetime.fromtimestamp(EPOCH + seconds, UTC).isoformat()
    item["created_at"] = "not-a-date" if x < 0.01 else created
    return item


def make_items(count: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Items ``0..count-1`` of the dataset with ``seed``, lazily."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    for index in range(count):
        yield make_item(index, rng)


class CopySource:
    """A read-only file of ``COPY`` text rows ``dataset_id<TAB>index<TAB>json``."""

    def __init__(self, dataset_id: int, items: Iterator[dict[str, Any]]) -> None:
        self._rows = (
            f"{dataset_id}\t{i}\t{json.dumps(item, separators=(',', ':'))}\n".replace("\\", "\\\\")
            for i, item in enumerate(items)
        )

    def read(self, size: int = -1, /) -> bytes:
        parts: list[str] = []
        length = 0
        for row in self._rows:
            parts.append(row)
            length += len(row)
            if 0 <= size <= length:
                break
        return "".join(parts).encode()

    def readline(self, size: int = -1, /) -> bytes:
        return next(self._rows, "").encode()


def generate(name: str, count: int, seed: int = 0, replace: bool = False) -> int:
    """Create dataset ``name`` with ``count`` items; return its id."""
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise InvalidArguments("a dataset name is 1 to 200 characters")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_ITEMS:
        raise InvalidArguments(f"items must be an integer in 0..{MAX_ITEMS}")
    with db.connection() as conn, conn.cursor() as cur:
        if replace:
            cur.execute("DELETE FROM datasets WHERE name = %s", (name,))
        cur.execute(
            "INSERT INTO datasets (name, item_count, seed) VALUES (%s, %s, %s)"
            " ON CONFLICT (name) DO NOTHING RETURNING id",
            (name, count, seed),
        )
        row = cur.fetchone()
        if row is None:
            raise InvalidArguments(f"dataset {name!r} exists (use --replace)")
        dataset_id = int(row[0])
        cur.copy_expert(
            "COPY dataset_items (dataset_id, item_index, data) FROM STDIN",
            CopySource(dataset_id, make_items(count, seed)),
            size=CHUNK,
        )
    return dataset_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m celeryref.mapreduce.generate")
    parser.add_argument("--name", required=True, help="dataset name (unique)")
    parser.add_argument("--items", type=int, required=True, help="number of items")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same items")
    parser.add_argument("--replace", action="store_true", help="replace a dataset of that name")
    args = parser.parse_args(argv)
    logs.configure(logging.INFO)
    started = time.perf_counter()
    try:
        dataset_id = generate(args.name, args.items, args.seed, args.replace)
    except InvalidArguments as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    seconds = time.perf_counter() - started
    logger.info(
        "dataset %r (id %d): %d items in %.1fs (%.0f items/s)",
        args.name,
        dataset_id,
        args.items,
        seconds,
        args.items / seconds if seconds else 0.0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
