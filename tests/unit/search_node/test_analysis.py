"""Analyzer and field analysis: folding, tokenizing, addresses, HTML, query-side matches."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from search_node import fields as F
from search_node.index import IndexDoc
from tidings_runtime import analysis as A


def test_folding_and_tokens() -> None:
    assert A.TEXT.tokens("Café ÉCOLE Straße ＦＵＬＬ naïve Ørsted") == ["cafe", "ecole", "strasse", "full", "naive", "orsted"]
    assert A.TEXT.tokens("v3.14, 1,000 items; don't") == ["v3", "14", "1", "000", "items", "don", "t"]


def test_any_script() -> None:
    assert A.TEXT.tokens("東京タワー") == ["東", "京", "タ", "ワ", "ー"]
    assert A.TEXT.tokens("Привет, Мир! नमस्ते दुनिया 한국어") == ["привет", "мир", "नमस्ते", "दुनिया", "한국어"]


@given(st.text(alphabet=st.characters(max_codepoint=127)), st.text(max_size=40))
def test_ascii_text_has_the_words_the_pattern_finds(ascii_text: str, other: str) -> None:
    """tokenize's translate-and-split path for ASCII text against the pattern it stands for."""
    assert A.tokenize(ascii_text) == A._TOKEN.findall(ascii_text)
    assert A.tokenize(ascii_text + other) == A._TOKEN.findall(ascii_text + other)


def test_html_to_text() -> None:
    html = "<html><head><title>t</title><style>p{}</style></head><p>Hello&nbsp;&amp;<b>wo</b>rld</p><div>next</div>"
    assert A.HTML.tokens(html) == ["hello", "world", "next"]


def test_address_keywords() -> None:
    assert A.ADDRESS.keyword_terms("John.Smith@Mail.Example.CO.uk") == [
        "john.smith@mail.example.co.uk", "john.smith", "mail.example.co.uk", "example.co.uk", "co.uk"]
    assert A.ADDRESS.keyword_terms("not an address") == []


def _doc(**kw: object) -> IndexDoc:
    base: dict[str, object] = dict(id="0" * 32, received_ms=0, size=1, folder_id="inbox", unread=False, starred=False,
                                   has_attachments=False, rfc822msgid="<A1@X.org>", from_=(("Ann Lee", "ann@x.org"),),
                                   to=(), cc=(), bcc=(), subject="Hi there", text="", html="", attachments=())
    base.update(kw)
    return IndexDoc(**base)  # type: ignore[arg-type]


def test_analyze_fields_and_round_trip() -> None:
    doc = _doc(text="one two", html="<p>three</p>", attachments=(("Q3 Report.PDF", "application/pdf", None),
                                                                ("notes.txt", "text/plain", "alpha beta")))
    fw = F.analyze(doc)
    assert fw[F.FROM.code] == [F.Value(("ann", "lee", "ann", "x", "org"), ("ann@x.org", "ann", "x.org"))]
    assert [v.tokens for v in fw[F.BODY.code]] == [("one", "two"), ("three",)]
    assert fw[F.FILENAME_FIELD.code][1] == F.Value(("notes", "txt"), ("notes.txt",))
    assert fw[F.MSGID.code] == [F.Value((), ("a1@x.org",))]
    assert F.decode_forward(F.encode_forward(fw)) == fw
    texts, body = F.posting_texts(fw), "\x00" + chr(F.BODY.code)
    assert "\x01three" + body in texts and "\x02one two" + body in texts and "\x02two three" + body not in texts
    assert "\x01ann@x.org\x00" + chr(F.FROM.code) in texts and not any(t.startswith("\x02") and t.endswith(
        "\x00" + chr(F.FROM.code)) for t in texts)


def test_query_side_matches() -> None:
    assert F.match_for(F.FROM, "Ann@X.org") == F.Match(("ann@x.org",))
    assert F.match_for(F.BODY, "ann@x.org") == F.Match(("ann", "x", "org"))
    assert F.match_for(F.BODY, "Café", prefix=True) == F.Match(("cafe",), True)
    assert F.match_for(F.BODY, "!!!") is None
    value = F.Value(("the", "quick", "brown", "fox"))
    assert F.value_matches(value, F.Match(("quick", "bro"), True))
    assert not F.value_matches(value, F.Match(("quick", "fox")))
