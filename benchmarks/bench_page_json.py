"""Benchmark: making and writing a page's item slots, msgspec Structs (what page/result.py uses)
against the slots dataclasses they replaced (the baseline, in the same run).

A 20 x 20 page shows ~370 items; each slot has the 15 fields of `ItemSlot`. Reports min and
median over repeats, in ms, for: constructing the slots from columns (as `_explain` does) and
writing them as JSON (msgspec.json.encode for the Structs, orjson.dumps for the dataclasses,
as the service did before). Both JSON texts decode to the same value (checked).

    python benchmarks/bench_page_json.py --slots 371 --repeat 300
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys

import msgspec
import orjson
from timing import timed

from shelfrank.page.result import ItemSlot


def _dataclass_like(struct: type[msgspec.Struct]) -> type:
    """The Struct's fields as a slots dataclass, the shape the page result had before msgspec
    (2026-11-27): the baseline keeps the same fields as the Struct it is compared with."""
    fields = []
    for f in msgspec.structs.fields(struct):
        if f.default is not msgspec.NODEFAULT:
            fields.append((f.name, f.type, dataclasses.field(default=f.default)))
        elif f.default_factory is not msgspec.NODEFAULT:
            fields.append((f.name, f.type, dataclasses.field(default_factory=f.default_factory)))
        else:
            fields.append((f.name, f.type))
    return dataclasses.make_dataclass(f"Dataclass{struct.__name__}", fields, slots=True)


DataclassSlot = _dataclass_like(ItemSlot)


def columns(n: int) -> tuple[list, ...]:
    return (
        [f"item-{i:06d}" for i in range(n)], list(range(n)), [0.5 + i / 1e4 for i in range(n)], [1.0] * n,
        [f"Title of item {i}" for i in range(n)], [f"Brand {i % 40}" for i in range(n)],
        [f"c{i % 90}" for i in range(n)], [f"Category {i % 90}" for i in range(n)],
        [round(5 + i * 0.37, 2) for i in range(n)], [f"https://img.example/{i}.jpg" for i in range(n)],
        [i % 9 != 0 for i in range(n)], [i % 50 == 0 for i in range(n)],
        [("new",) if i % 7 == 0 else () for i in range(n)],
        ["Popular in your categories"] * n,
        [{"item_ctr": 0.4121 - i / 1e5, "item_clicks_7d": 0.2, "user_category_share": -0.1} for i in range(n)],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, default=371, help="item slots per page")
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    if args.slots < 1 or args.repeat < 1:
        parser.error("--slots and --repeat must be at least 1")
    cols = columns(args.slots)
    structs, dataclasses_ = list(map(ItemSlot, *cols)), list(map(DataclassSlot, *cols))
    if orjson.loads(orjson.dumps(dataclasses_)) != orjson.loads(msgspec.json.encode(structs)):
        sys.exit("the two JSON texts differ")
    rows = [
        ("make the slots", timed(lambda: list(map(DataclassSlot, *cols)), args.repeat),
         timed(lambda: list(map(ItemSlot, *cols)), args.repeat)),
        ("write them as JSON", timed(lambda: orjson.dumps(dataclasses_), args.repeat),
         timed(lambda: msgspec.json.encode(structs), args.repeat)),
    ]
    print(f"Python {platform.python_version()} ({sys.executable}); {args.slots} slots, {args.repeat} repeats; "
          "ms, min / median\n")
    print("| step | slots dataclass + orjson (before) | msgspec Struct (now) |")
    print("|---|---:|---:|")
    for name, (b_min, b_med), (s_min, s_med) in rows:
        print(f"| {name} | {b_min:.3f} / {b_med:.3f} | {s_min:.3f} / {s_med:.3f} |")


if __name__ == "__main__":
    main()
