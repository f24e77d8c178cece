"""Every text exists in every language, with the same placeholders."""

import pytest

from content.catalog import LANGUAGES, MissingText, catalogue, placeholders, text


def test_languages_have_the_same_keys():
    keys = {lang: set(catalogue(lang)) for lang in LANGUAGES}
    base = keys[LANGUAGES[0]]
    for lang, k in keys.items():
        assert k == base, f"{lang}: missing {base - k}, extra {k - base}"


def test_placeholders_match_across_languages():
    base = catalogue(LANGUAGES[0])
    for lang in LANGUAGES[1:]:
        other = catalogue(lang)
        for key, template in base.items():
            assert placeholders(template) == placeholders(other[key]), key


def test_render_and_errors():
    assert text("en", "contact.sent", officer="Li Na") == "Passed on to Li Na. Please wait for a reply."
    assert "李娜" in text("zh-CN", "contact.sent", officer="李娜")
    assert text("fr", "level.strict") == "严管"  # unknown language falls back to the default
    with pytest.raises(MissingText):
        text("en", "no.such.key")
    with pytest.raises(MissingText):
        text("en", "contact.sent")
