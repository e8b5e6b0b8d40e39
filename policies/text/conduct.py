"""What the conduct rules share: an action per category under the rule's ceiling, what the sender reads next,
and the message's text read once.

A category (profanity, threats, political campaigning ...) has its own
action: "off", "monitor" (recorded for the mail admins, nothing else), or
"tag", "hold", "reject" — never more severe than the rule's `action`.

Every rule runs on every message before the client hears its reply, so the
text is split into words (and prepared for disguised words) once per message
and shared by the rules through `Message.derived`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from milter.mail.message import Message
from policies.base import Action
from policies.text.obfuscation import WordList, prepare
from policies.text.phrases import MAX_CHARS, PhraseList, Text, compile_phrase
from policies.text.wordlists import read_list

CategoryAction = Literal["off", "monitor", "tag", "hold", "reject"]
CATEGORY_ACTION_FIX = '"off", "monitor" (recorded only), "tag", "hold" or "reject"'

NEXT_STEP = {
    "deliver": "The message was delivered; this is only recorded for the mail administrators.",
    "tag": "The message was delivered with a warning.",
    "hold": "The message is held until IT reviews it; they will release it or return it to you.",
    "reject": "The message was not delivered.",
}


def text_of(message: Message) -> Text:
    """The message's text (subject, bodies, attachment text) in words, for phrase lists; once per message."""
    return message.derived("conduct.text", lambda m: Text(m.all_text))


def prepared_of(message: Message) -> str:
    """The message's text as disguised words are looked for in it (see obfuscation.prepare); once per message."""
    return message.derived("conduct.prepared", lambda m: prepare(m.all_text[:MAX_CHARS]))


def effective(category: CategoryAction, ceiling: str) -> str | None:
    """What a category asks: its own action, capped by the rule's; "deliver" when monitored; None when off."""
    if category == "off":
        return None
    if category == "monitor":
        return "deliver"
    return str(min(Action[category.upper()], Action[ceiling.upper()]))


class Terms:
    """A list of single words (found however disguised) and phrases (found with typos)."""

    def __init__(self, path: Path) -> None:
        entries = read_list(path)
        single = tuple(e for e in entries if len(e.split()) == 1 and not e.startswith("re:"))
        several = tuple(e for e in entries if e not in single)
        self.words = WordList.of(single, str(path))
        self.phrases = PhraseList(str(path), tuple(compile_phrase(e, str(path)) for e in several))


def load_terms(path: Path) -> Terms:
    """A word-and-phrase list, compiled once per version of the file; ValueError names a bad line."""
    stat = path.stat()
    return _terms(path.resolve(), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _terms(path: Path, mtime_ns: int, size: int) -> Terms:  # mtime and size make an edited file a new key
    return Terms(path)
