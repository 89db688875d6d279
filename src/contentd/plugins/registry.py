"""Plugin registrations and the order they are initialised in (spec §7).

A :class:`Registration` names a plugin by ``type`` and ``id`` (its URI is
``<type>.<id>``), lists the plugin *types* it needs, and carries the function
that builds it plus its default configuration. A :class:`Registry` holds
registrations in the order they were added and computes the initialisation
order with :meth:`Registry.graph`:

1. the disable filter is applied first (disabled registrations never load and
   never satisfy a requirement);
2. for each enabled registration, in registration order, its requirements are
   added depth-first (a required type means every enabled registration of that
   type except the registration itself; ``"*"`` means every enabled
   registration), then the registration itself;
3. each registration appears once. Cycles are not detected (a cycle simply
   stops at registrations already being visited).

Registering an empty type or id, a URI that is already registered, or ``"*"``
together with other requirements raises :class:`PluginRegistrationError`
(containerd panics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from contentd.content.errors import AlreadyExists, ContentError, InvalidArgument

if TYPE_CHECKING:
    from contentd.plugins.context import InitContext

__all__ = [
    "ALL",
    "DisableFilter",
    "DuplicatePluginError",
    "InitFn",
    "PluginRegistrationError",
    "Registration",
    "Registry",
    "SkipPlugin",
    "id_filter",
    "uri_filter",
]

#: The requirement meaning "every other enabled plugin" (only valid alone).
ALL: Final = "*"

InitFn = Callable[["InitContext"], object]
DisableFilter = Callable[["Registration"], bool]


class PluginRegistrationError(InvalidArgument):
    """A registration that cannot be added (containerd panics on these)."""


class DuplicatePluginError(AlreadyExists):
    """A registration whose URI is already registered."""


class SkipPlugin(ContentError):
    """Raised by an init that decides not to load (``ctr plugins ls`` shows ``skip``)."""

    kind_text = "skip plugin"


@dataclass(frozen=True)
class Registration:
    """One plugin: how to build it, what it needs and its default config.

    ``init`` is called with an :class:`~contentd.plugins.context.InitContext`
    and returns the plugin instance; what it raises is recorded as the
    plugin's init error. ``config`` is the default configuration object (a
    dataclass, or None for a plugin without config): the daemon decodes the
    ``[plugins."<uri>"]`` table over it and hands the result to ``init`` as
    ``ic.config``. ``disable`` keeps it from loading regardless of config.
    """

    type: str
    id: str
    init: InitFn
    requires: tuple[str, ...] = ()
    config: object | None = None
    disable: bool = False
    #: Where it came from ("builtin", "proxy_plugins.<name>", "entrypoint <name>"); for logs.
    origin: str = field(default="builtin", compare=False)

    @property
    def uri(self) -> str:
        return f"{self.type}.{self.id}"

    def validate(self) -> None:
        if not self.type:
            raise PluginRegistrationError("plugin: no type")
        if not self.id:
            raise PluginRegistrationError(f"{self.type}: plugin: no id")
        if ALL in self.requires and len(self.requires) != 1:
            raise PluginRegistrationError(f"{self.uri}: invalid requires")


class Registry:
    """Registrations in registration order."""

    def __init__(self, registrations: Iterable[Registration] = ()) -> None:
        self._registrations: list[Registration] = []
        self._uris: set[str] = set()
        for registration in registrations:
            self.register(registration)

    def register(self, registration: Registration) -> None:
        """Add ``registration``; PluginRegistrationError / DuplicatePluginError if invalid."""
        registration.validate()
        if registration.uri in self._uris:
            raise DuplicatePluginError(f"{registration.uri}: plugin: id already registered")
        self._registrations.append(registration)
        self._uris.add(registration.uri)

    def __iter__(self) -> Iterator[Registration]:
        return iter(list(self._registrations))

    def __len__(self) -> int:
        return len(self._registrations)

    def __contains__(self, uri: object) -> bool:
        return uri in self._uris

    def get(self, uri: str) -> Registration | None:
        for registration in self._registrations:
            if registration.uri == uri:
                return registration
        return None

    def graph(self, disabled: DisableFilter | None = None) -> list[Registration]:
        """The enabled registrations in initialisation order (see the module doc)."""
        enabled = [
            r
            for r in self._registrations
            if not r.disable and not (disabled is not None and disabled(r))
        ]
        ordered: list[Registration] = []
        added: set[str] = set()
        visiting: set[str] = set()

        def visit(registration: Registration) -> None:
            if registration.uri in visiting:
                return
            visiting.add(registration.uri)
            for wanted in registration.requires:
                for other in enabled:
                    if other.uri == registration.uri:
                        continue
                    if wanted != ALL and other.type != wanted:
                        continue
                    visit(other)
                    if other.uri not in added:
                        ordered.append(other)
                        added.add(other.uri)
            visiting.discard(registration.uri)

        for registration in enabled:
            visit(registration)
            if registration.uri not in added:
                ordered.append(registration)
                added.add(registration.uri)
        return ordered


def uri_filter(uris: Iterable[str]) -> DisableFilter:
    """A disable filter matching registrations by URI (config version 2)."""
    wanted = frozenset(uris)
    return lambda r: r.uri in wanted


def id_filter(ids: Iterable[str]) -> DisableFilter:
    """A disable filter matching registrations by id (config version 1)."""
    wanted = frozenset(ids)
    return lambda r: r.id in wanted
