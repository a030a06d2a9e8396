#!/usr/bin/env bash
# The table across bundled tasks in the README (Reports): 10 bundled tasks x 3 seeds, 30 steps each, every
# prompt scored once on the whole test set. Running this again goes on where it stopped (finished runs
# kept, stopped ones resumed); then the report:
#   promptgrad report runs/tasks-x-seeds --out benchmarks/results/tasks-x-seeds
set -euo pipefail
promptgrad sweep tasks-x-seeds \
  --grid task=capitals,comparatives,continents,countries-de,countries-es,countries-fr,currencies,languages-de,languages-es,languages-fr \
  --grid seed=0,1,2 \
  --steps 30 --eval-every 0 --eval-size 0 --runs-dir runs --jobs 2
