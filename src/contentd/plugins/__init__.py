"""contentd's plugin registry, modelled on containerd's (spec §7).

A :class:`Registration` describes a plugin (type, id, requirements, init
function, default config); :mod:`.loader` turns a config and a
:class:`Registry` into initialised plugins; :mod:`.builtin` holds contentd's
own registrations and :mod:`.entrypoints` finds third-party ones (entry-point
group ``contentd.plugins``).
"""

from contentd.plugins.context import InitContext, Meta, Plugin, PluginSet
from contentd.plugins.registry import (
    ALL,
    DuplicatePluginError,
    InitFn,
    PluginRegistrationError,
    Registration,
    Registry,
    SkipPlugin,
    id_filter,
    uri_filter,
)

__all__ = [
    "ALL",
    "DuplicatePluginError",
    "InitContext",
    "InitFn",
    "Meta",
    "Plugin",
    "PluginRegistrationError",
    "PluginSet",
    "Registration",
    "Registry",
    "SkipPlugin",
    "id_filter",
    "uri_filter",
]
