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
import platform
import sys
import time
from dataclasses import dataclass, field

import msgspec
import orjson

from shelfrank.page.result import ItemSlot


@dataclass(slots=True)
class DataclassSlot:  # ItemSlot as it was before msgspec (2026-11-27)
    item_id: str
    position: int
    score: float
    propensity: float
    title: str = ""
    brand: str = ""
    category_id: str = ""
    category: str = ""
    price: float = 0.0
    image_url: str = ""
    has_image: bool = True
    explore: bool = False
    badges: tuple[str, ...] = ()
    reason: str = ""
    signals: dict[str, float] = field(default_factory=dict)


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


def timed(f, repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        f()
        runs.append(time.perf_counter() - started)
    runs.sort()
    return runs[0] * 1e3, runs[len(runs) // 2] * 1e3


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
