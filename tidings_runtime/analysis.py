"""Text analysis: small callables (normalize, fold, strip HTML, tokenize, address split) chained per field."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser

TextFilter = Callable[[str], str]
KeywordExtractor = Callable[[str], list[str]]

# Letters that carry no combining mark under NFD but are still accented variants.
_LETTER_FOLDS = str.maketrans({"ø": "o", "đ": "d", "ł": "l", "ħ": "h", "ı": "i", "ŀ": "l",
                               "æ": "ae", "œ": "oe", "þ": "th", "ŧ": "t"})
_DIACRITICS = re.compile("[\u0300-\u036f]+")
# Scripts written without spaces: each ideograph or kana is its own token (phrases join them).
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Combining marks that are part of words in Hebrew, Arabic, Indic, Thai and Myanmar script.
_MARKS = "\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0900-\u0dff\u0e00-\u0e7f\u1000-\u109f\u200c\u200d"
_TOKEN = re.compile(f"[{_CJK}]|(?:[^\\W_{_CJK}]|[{_MARKS}])+")
_EMAIL = re.compile(r"^[^\s@\x00-\x1f]+@[^\s@\x00-\x1f]+$")
_BLOCK_TAGS = frozenset("address article aside blockquote br dd div dl dt footer h1 h2 h3 h4 h5 h6 header hr "
                        "li main nav ol p pre section table td th tr ul".split())
_SKIP_TAGS = frozenset(("script", "style", "head", "title"))


def normalize(text: str) -> str:
    """Unicode NFKC and full case folding (so "ß" matches "ss" and "Ｆｕｌｌ" matches "full")."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKC", text).casefold()


def fold_accents(text: str) -> str:
    """Drop Latin, Greek and Cyrillic diacritics: "café" → "cafe"; other scripts keep their marks."""
    if text.isascii():
        return text
    stripped = _DIACRITICS.sub("", unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFC", stripped).translate(_LETTER_FOLDS)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML body: entities decoded, scripts and styles dropped, blocks split."""
    if "<" not in html and "&" not in html:
        return html
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return "".join(extractor.parts)


# ASCII text's words are its runs of letters and digits: the same as _TOKEN finds in it, by
# translate and split, ~12x faster (a 4 KB body: 18 us against 225 us).
_ASCII_SEPARATORS = str.maketrans({i: " " for i in range(128) if not chr(i).isalnum()})


def tokenize(text: str) -> list[str]:
    """Words of any script and digit runs; CJK characters one by one."""
    if text.isascii():
        return text.translate(_ASCII_SEPARATORS).split()
    return _TOKEN.findall(text)


def address_keywords(email: str) -> list[str]:
    """Whole address, local part, domain and each parent domain of two labels or more."""
    if not _EMAIL.match(email):
        return []
    local, domain = email.rsplit("@", 1)
    labels = domain.split(".")
    parents = [".".join(labels[i:]) for i in range(1, len(labels) - 1)]
    return [email, local, domain, *parents]


def filename_keywords(name: str) -> list[str]:
    """A file name with an extension is also one term: filename:report.pdf."""
    return [name] if "." in name and not any(c.isspace() for c in name) else []


def looks_like_keyword(text: str) -> bool:
    """Query text that names an address, domain or dotted name rather than words."""
    return ("@" in text or "." in text) and not any(c.isspace() for c in text) and len(tokenize(text)) > 1


@dataclass(frozen=True)
class Analyzer:
    """A chain of text filters, the tokenizer, and optional whole-value keywords."""

    filters: Sequence[TextFilter]
    keywords: KeywordExtractor | None = None

    def clean(self, value: str) -> str:
        for step in self.filters:
            value = step(value)
        return value

    def tokens(self, value: str) -> list[str]:
        return tokenize(self.clean(value))

    def keyword_terms(self, value: str) -> list[str]:
        if self.keywords is None:
            return []
        return self.keywords(fold_accents(normalize(value.strip())))


TEXT = Analyzer((normalize, fold_accents))
HTML = Analyzer((html_to_text, normalize, fold_accents))
ADDRESS = Analyzer((normalize, fold_accents), address_keywords)
FILENAME = Analyzer((normalize, fold_accents), filename_keywords)
