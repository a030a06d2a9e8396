"""Build the translation tasks: English names of territories and languages -> French, German, Spanish.

Source: the Unicode CLDR locale data (Unicode License v3, data/licences/CLDR_UNICODE_LICENSE) as bundled
in the PyPI package babel 2.19.0 (BSD-3-Clause; it ships CLDR 49): `Locale(lang).territories` and
`Locale(lang).languages`, which map the same codes to each locale's names.

    pip install babel==2.19.0
    python data/build_translation.py      # writes data/tasks/{countries,languages}-{fr,de,es}.jsonl, prints counts

A pair is (English name, target name) for one code, the names exactly as CLDR writes them (accents, case,
"&"): "Germany" -> "Allemagne", "German" -> "allemand". Names spelled the same in both languages
("Chile" -> "Chile" in German, 41% of German territory names) are left out (by task_files.write_pairs, as in every task): a
prompt that makes the model copy its input would score on them without translating anything.
Territories: the two-letter codes, less those that are no territory (EU European Union, EZ Eurozone,
UN United Nations, QO Outlying Oceania, XA/XB pseudo-locales, ZZ Unknown Region); the numeric codes
(001 world, 419 Latin America) are regions. Languages: the plain language codes ("de", "haw"), not the
regional or script variants ("en_GB" British English, "zh_Hans" Simplified Chinese).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from babel import Locale
from task_files import TASKS_DIR, write_pairs

TARGETS = {"fr": "French", "de": "German", "es": "Spanish"}
NOT_TERRITORIES = {"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"}


def translations(names: dict[str, str], other: dict[str, str], keep) -> set[tuple[str, str]]:
    return {(names[code], other[code]) for code in names if keep(code) and code in other}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TASKS_DIR)
    args = parser.parse_args(argv)
    english = Locale("en")
    territory = lambda code: re.fullmatch(r"[A-Z]{2}", code) and code not in NOT_TERRITORIES
    language = lambda code: re.fullmatch(r"[a-z]{2,3}", code)
    for lang in TARGETS:
        target = Locale(lang)
        write_pairs(f"countries-{lang}", translations(english.territories, target.territories, territory), args.out)
        write_pairs(f"languages-{lang}", translations(english.languages, target.languages, language), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
