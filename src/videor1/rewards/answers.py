"""Answer extraction and parsing for the rule-based rewards (docs/rewards.md, paper §3.1).

Everything here is a pure function over strings that never raises: the inputs are
policy samples, and a reward function that crashes mid-rollout costs a whole step.
Parsers return ``None`` whenever the reading is missing *or ambiguous*, because an
ambiguous reading that still scores would be a reward hack ("1 2 3 4 5", "A B C D").
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

# Unrolled "anything but another answer tag": each "<" is consumed by exactly one branch,
# so matching stays linear even on adversarial input, and each close tag pairs with the
# nearest open tag before it.
_ANSWER_PAIR = re.compile(r"<answer>([^<]*(?:<(?!/?answer>)[^<]*)*)</answer>")

# Longer texts are not a number or a letter; refusing them also bounds regex work.
MAX_PARSE_CHARS = 1_000

_NUMBER = re.compile(
    r"(?<![0-9.])"  # never start inside another number
    r"([-+\u2212]?)[$€£¥]?"  # sign (ASCII or the Unicode minus), then an optional currency
    r"((?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]*)?|\.[0-9]+)"
    r"((?:[eE][-+]?[0-9]+)?)"
    r"(?![0-9]|\.[0-9])"  # "1.2.3" is a version string, not the number 1.2
)

# A letter used as an option label, with the forms a model writes it in.
_BARE_LETTER = re.compile(r"[(\[]?([A-Za-z])[)\].:]?")
_LABEL_PREFIX = re.compile(r"[(\[]?([A-Za-z])[)\].:]\s*(.*)", re.DOTALL)
_CUE_LETTER = re.compile(
    r"\b(?:answer|option|choice)\b(?:\s*(?:(?:is|would be|should be)\b|:|-))?"
    r"(?:\s*(?:option|choice)\b)?\s*:?\s*"
    r"(?:[(\[]([A-Za-z])[)\]]|([A-Za-z])(?![A-Za-z0-9]))",
    re.IGNORECASE | re.ASCII,  # ASCII: IGNORECASE alone lets "[a-z]" match the Kelvin sign
)
# A standalone capital reads as a label unless a lowercase word follows, which makes
# it the word "A" or "I" ("A dog", "I think"); connectives do not count as such a
# word, so "A or B" still names two letters. Bracketed letters are always labels.
_LABEL_TOKEN = re.compile(
    r"[(\[]([A-Za-z])[)\]]"
    r"|(?<![A-Za-z0-9])([A-Z])(?![A-Za-z0-9'\u2019])"
    r"(?!\s+(?!(?:or|and|nor|to|vs|versus|then|is|was)\b)[a-z])"
)
_WRAPPERS = "*_`\"'\u201c\u201d\u2018\u2019 \t\r\n"
_TRAILING_PUNCT = ".,;:!?\u3002"


def extract_answer(text: str) -> str | None:
    """Content of the last complete ``<answer>…</answer>`` pair, stripped (docs/rewards.md).

    The last pair wins because models often restate a draft answer inside their
    reasoning before the final one. ``None`` when there is no complete pair.
    """
    span = answer_span(text)
    return None if span is None else text[span[0]:span[1]].strip()


def answer_span(text: str) -> tuple[int, int] | None:
    """Character span [start, end) of the content that `extract_answer` reads (unstripped), or None."""
    if not isinstance(text, str):
        return None
    last = None
    for match in _ANSWER_PAIR.finditer(text):
        last = match
    return None if last is None else last.span(1)


def normalize_text(text: str) -> str:
    """Casefold, collapse whitespace and drop trailing punctuation, for text matching."""
    if not isinstance(text, str):
        return ""
    return " ".join(text.casefold().split()).rstrip(_TRAILING_PUNCT).rstrip()


def parse_number(text: str) -> float | None:
    """The single number in ``text`` ("1,000", "$5", "5%", "about 42 m"), else ``None``.

    Several *different* numbers make the reading ambiguous and give ``None``, so a
    policy cannot list candidates to farm the reward; repeats of one value are fine.
    Texts longer than ``MAX_PARSE_CHARS`` and non-finite values also give ``None``.
    """
    if not isinstance(text, str) or len(text) > MAX_PARSE_CHARS:
        return None
    values: set[float] = set()
    for sign, digits, exponent in _NUMBER.findall(text):
        value = float(digits.replace(",", "") + exponent)  # the regex admits only valid floats
        if not math.isfinite(value):
            return None
        values.add(-value if sign in ("-", "\u2212") else value)
    return values.pop() if len(values) == 1 else None


def parse_options(options: Sequence[str] | None) -> dict[str, str]:
    """Map option letter -> normalised option text, e.g. ``["A. red"] -> {"A": "red"}``.

    When any option lacks a letter label, all are lettered by position (A, B, ...),
    since a partial labelling cannot be trusted.
    """
    if not isinstance(options, (list, tuple)) or not options:
        return {}
    texts = [o if isinstance(o, str) else "" for o in options[:26]]
    labelled = [_LABEL_PREFIX.fullmatch(t.strip()) for t in texts]
    if all(labelled):
        return {m.group(1).upper(): normalize_text(m.group(2)) for m in labelled}
    return {chr(ord("A") + i): normalize_text(t) for i, t in enumerate(texts)}


def _letters_from_text(text: str, table: dict[str, str]) -> set[str]:
    """Every letter the text could be naming; more than one means ambiguous."""
    found: set[str] = set()
    if (m := _LABEL_PREFIX.fullmatch(text)) is not None:
        letter, rest = m.group(1).upper(), normalize_text(m.group(2))
        same_text = [k for k, v in table.items() if v and v == rest]
        if same_text:
            # "B. red circle": the option text settles it, and may itself contain
            # capitals ("Person A") that must not count as extra labels.
            return {letter, *same_text}
        found.add(letter)
    for m in _CUE_LETTER.finditer(text):
        if m.group(1):
            found.add(m.group(1).upper())
            continue
        letter, after = m.group(2), text[m.end() :].lstrip()
        # A lowercase letter after the cue is the article in "the answer is a dog";
        # accept it only when it ends the text.
        if letter.isupper() or not after.strip(_TRAILING_PUNCT + ")]"):
            found.add(letter.upper())
    for m in _LABEL_TOKEN.finditer(text):
        found.add((m.group(1) or m.group(2)).upper())
    return found


def parse_option_letter(text: str, options: Sequence[str] | None = None) -> str | None:
    """The single option letter ``text`` names ("B", "(b)", "The answer is B", or an option's text).

    ``None`` when no letter or several different letters are named, or, when
    ``options`` are given, when the letter is not one of them (docs/rewards.md).
    """
    if not isinstance(text, str) or len(text) > MAX_PARSE_CHARS:
        return None
    table = parse_options(options)
    cleaned = text.strip(_WRAPPERS).rstrip(_TRAILING_PUNCT).strip(_WRAPPERS)
    if not cleaned:
        return None
    if (m := _BARE_LETTER.fullmatch(cleaned)) is not None:
        # A bare letter is read first, so an option whose text is a letter cannot
        # make the ground truth "A" read as another option.
        letters = {m.group(1).upper()}
    else:
        norm = normalize_text(cleaned)
        letters = {k for k, v in table.items() if v and norm == v}
        letters = letters or _letters_from_text(cleaned, table)
    hits = {k for k in letters if k in table} if table else letters
    return hits.pop() if len(hits) == 1 else None
