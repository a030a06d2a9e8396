#!/usr/bin/env bash
# The README's table across all bundled tasks (Reports): the 17 bundled tasks x 3 seeds, 30 steps each,
# every prompt scored once on the run's whole test set, two runs at a time (one per core). Running this
# again goes on where it stopped (finished runs kept, stopped ones resumed). Then the report:
#   promptgrad report runs/bundled-tasks --out benchmarks/results/bundled-tasks
#   python benchmarks/report_summary.py benchmarks/results/bundled-tasks/report.json
set -euo pipefail
promptgrad sweep bundled-tasks \
  --grid task=antonyms,synonyms,hypernyms,meronyms,derivations,plurals,past-tense,comparatives,capitals,continents,countries-de,countries-es,countries-fr,currencies,languages-de,languages-es,languages-fr \
  --grid seed=0,1,2 \
  --steps 30 --eval-every 0 --eval-size 0 --runs-dir runs --jobs 2
