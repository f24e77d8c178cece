"""Errors the office reads in its own language: a key of the office's texts (content/locales/office/) and the
values it names, rendered for the reader (the console's officer, the command line's CHECKIN_LANGUAGE)."""

from __future__ import annotations

from content.catalog import text


class Refused(ValueError):
    """A value or change refused; `render(lang)` says why. `str()` is the English text (logs, tracebacks)."""

    section = ""

    def __init__(self, key: str, /, cause: Refused | None = None, **params: object) -> None:
        self.key, self.cause = key, cause  # `cause`: a refusal this one reports, said as its `why`
        self.params = {k: str(v) for k, v in params.items()}
        super().__init__(self.render("en"))

    @property
    def ref(self) -> str:
        """The key under `office.`: what a RowError keeps of a refusal it reports."""
        return f"{self.section}.{self.key}"

    def render(self, lang: str) -> str:
        why = {"why": self.cause.render(lang)} if self.cause else {}
        return text(lang, f"office.{self.ref}", **self.params, **why)


class PhoneError(Refused):
    """A phone number that cannot be used (handlers.roster.normalise_phone)."""

    section = "phone"


def said(exc: Exception, lang: str) -> str:
    """What to show of an error: a refusal in the reader's language, anything else as it is."""
    return exc.render(lang) if isinstance(exc, Refused) else str(exc)
