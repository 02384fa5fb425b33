#!/usr/bin/env bash
# Collects every sentence wrapped in t() / nt() / N_() into assets/locales/messages.pot and
# merges it into each language's catalog (new sentences arrive untranslated, for a translator).
# Add a language: .venv/bin/pybabel init -i assets/locales/messages.pot -d assets/locales -D messages -l xx
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pybabel extract -F babel.cfg --no-default-keywords -k t -k nt:1,2 -k N_ \
  --add-location=file --sort-by-file --project="Transfer Lab" --no-wrap \
  -o assets/locales/messages.pot . 2>/dev/null
.venv/bin/pybabel update -i assets/locales/messages.pot -d assets/locales -D messages \
  --no-fuzzy-matching --no-wrap --ignore-obsolete
