"""Sentences the engine hands to people: English where the engine prints them (the command line,
log files), and their message id with its parameters, so the dashboard can show the same sentence
in the reader's language (ui/i18n.py looks the id up in the message catalogs).

    raise DatasetError(N_("No images in {folder}."), folder=path)   # str(e): the English sentence
    job.log(N_("Run folder: {path}"), path=run_dir)                 # the Train page translates it

`N_` marks a sentence for the catalog (scripts/i18n.sh finds it); it returns it unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field


def N_(msgid: str) -> str:
    return msgid


@dataclass(frozen=True)
class Message:
    """One sentence: an English template with named {placeholders} and their values. A value may
    itself be a Message (a reason inside a sentence); it is translated with its sentence."""
    msgid: str
    params: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.msgid.format(**{k: str(v) for k, v in self.params.items()}) if self.params else self.msgid


class Explained:
    """Mixed into the engine's exceptions a user can cause: `message` is what to show, translated."""

    def __init__(self, msgid: str | Message, **params):
        # A Message as it is: an error that passes on another's sentence (ExportError(e.message)).
        self.message = msgid if isinstance(msgid, Message) else Message(msgid, params)
        super().__init__(str(self.message))


class ConfigError(Explained, ValueError):
    """A setting or argument a user chose that cannot be used (callers catch it as ValueError)."""


def as_message(sentence: Message | str) -> Message:
    """A Message as it is; an English sentence without one (from outside the engine: a library's
    error) as a Message of that text, which the catalog does not know and shows as it is."""
    return sentence if isinstance(sentence, Message) else Message(str(sentence))


def message_of(e: BaseException) -> Message | str:
    """The Message an exception carries, else its English text."""
    return getattr(e, "message", None) if isinstance(getattr(e, "message", None), Message) else str(e)
