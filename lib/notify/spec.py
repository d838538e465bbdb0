"""What an alert channel kind is, as data: its key and label, the fields a channel of it holds
(each with its label, help, limit and rules) and the one small class that sends to it.

Each kind is one module of lib.notify.kinds; the service checks channels against its fields,
and the command line and the Monitoring page draw their options and inputs from them, so a new
kind needs no change anywhere else.

A channel stores two values, encrypted (lib.store): its URL, which every kind has, and for some
kinds a secret. So a field is one of those two :data:`SLOTS`; what else a kind needs travels in
its URL, as an e-mail channel's sender and recipients do.
"""

from __future__ import annotations

import re
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from lib.kernel.errors import FieldError, ValidationError
from lib.notify.deadline import Deadline
from lib.notify.models import Attempt, Destination, Event
from lib.notify.ssrf import Allow, Pinned

SLOTS = ("url", "secret")  # the values a channel stores, in the order the command line reads them
_KEY = re.compile(r"[a-z][a-z0-9_]{0,15}")  # it is stored in a 16-character column, and typed after --kind


@dataclass(frozen=True)
class Given:
    """A channel's values as one check sees them. ``saving``: every rule for saving a channel;
    otherwise only what an attempt to send needs (a store may hold values from before a rule)."""

    url: str
    secret: str
    allow: Allow  # SWITCHBOARD_ALERT_ALLOW, for the URL's host
    saving: bool = True


# A field's own rules: what is wrong with its value (the words after its label), or None.
Rule = Callable[[str, Given], str | None]


@dataclass(frozen=True)
class Field:
    """One value a channel of a kind holds, and everything the faces need to ask for it."""

    name: str  # one of SLOTS: where it is stored, the form's key and the command-line option
    label: str  # what people call it, e.g. "Signing secret"
    help: str  # what it is and where to find it, in sentences
    max_length: int  # checked before its rules: every value from outside has a limit
    rule: Rule
    example: str = ""  # the form's placeholder, and the command line's help
    required: bool = False  # a channel cannot be added without it
    secret: bool = False  # it is a credential: read from standard input or a hidden prompt, never an argument
    made: Callable[[], str] | None = None  # left blank when adding, Switchboard makes one (shown once)
    made_help: str = ""  # what to do with one that was made, said when it is shown

    def __post_init__(self) -> None:
        if self.name not in SLOTS or not self.label or self.max_length < 1:
            raise ValueError(f"A channel field is one of {SLOTS}, labelled, with a length limit: {self.name!r}.")
        if self.made is not None and (self.name != "secret" or not self.made_help):
            raise ValueError(f"Only a secret is made (when left blank), saying what to do with it: {self.label}.")

    @property
    def in_sentence(self) -> str:
        """The label inside a sentence: "signing secret", but "SMTP password" and "URL"."""
        return self.label[:1].lower() + self.label[1:] if self.label[1:2].islower() else self.label

    def problem(self, given: Given) -> str | None:
        value = getattr(given, self.name)
        if len(value) > self.max_length:
            return f"is {len(value)} characters long; at most {self.max_length}."
        return self.rule(value, given)


class Sender(ABC):
    """How a kind sends one event: where to (the caller resolves the host, checks it against the
    SSRF guard and pins it), then what it sends there. Never raises for an answer or a network
    failure: it says what happened in the :class:`Attempt`."""

    @abstractmethod
    def address(self, url: str) -> tuple[str, int]:
        """The host and port an attempt connects to, from a URL the kind's fields accept."""

    @abstractmethod
    def send(
        self, destination: Destination, event: Event, *, pinned: Pinned, deadline: Deadline, ssl_context: ssl.SSLContext
    ) -> Attempt:
        """One attempt, to the pinned address, within the deadline."""


@dataclass(frozen=True)
class Kind:
    """A kind of alert channel."""

    key: str  # stored in each channel's row, and given as --kind
    label: str  # what people call it, e.g. "Microsoft Teams"
    summary: str  # what it sends, in a few words for --kind's help
    listed: int  # where it comes in lists (the first is the form's default)
    fields: tuple[Field, ...]  # its URL first, then its secret if it takes one
    sender: Sender

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if not _KEY.fullmatch(self.key) or not names or names[0] != "url" or len(set(names)) != len(names):
            raise ValueError(f"A channel kind has a short lowercase key and a URL field first: {self.key!r}.")

    @property
    def url(self) -> Field:
        return self.fields[0]

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def check(self, url: str, secret: str | None, *, allow: Allow, saving: bool = True) -> None:
        """Refuse values no attempt can use (or, when ``saving``, that break a rule for saving
        a channel): :class:`ValidationError` naming each wrong field, with its fix."""
        given = Given(url, secret or "", allow, saving)
        errors = [FieldError(f.name, f.label, problem) for f in self.fields if (problem := f.problem(given))]
        if secret and saving and self.field("secret") is None:
            errors.append(
                FieldError(
                    "secret",
                    "Secret",
                    f"is not used: a {self.key} channel's URL is its credential. Leave the secret out.",
                )
            )
        if errors:
            raise ValidationError(errors)
