"""containerd's filter language (containerd 1.6 ``filters``), as every List and Subscribe takes it.

::

    from contentd import filters

    match = filters.parse_all(request.filters)  # InvalidArgument: does not parse, or too big
    if match.match(filters.adapt_fn(lambda path: fields_of(obj, path))):
        ...

:mod:`~contentd.filters.filter` says what a filter means (:class:`Filter`,
:class:`Adaptor`, :func:`parse_all`, the bounds on one list);
:mod:`~contentd.filters.syntax` scans and parses filter strings with containerd's
error texts and writes them (:func:`quote`); :mod:`~contentd.filters.regexp` runs
``~=`` on RE2. The adaptor of each kind of object lives with the object: content's
in :mod:`contentd.content.filters`, leases', images' and events' in
:mod:`contentd.metadata`, plugins' in :mod:`contentd.api.introspection`.
"""

from contentd.filters.filter import (
    ALWAYS,
    MAX_LENGTH,
    MAX_REGEXPS,
    MAX_SELECTORS,
    Adaptor,
    Filter,
    adapt_fn,
    parse,
    parse_all,
)
from contentd.filters.syntax import quote

__all__ = [
    "ALWAYS",
    "MAX_LENGTH",
    "MAX_REGEXPS",
    "MAX_SELECTORS",
    "Adaptor",
    "Filter",
    "adapt_fn",
    "parse",
    "parse_all",
    "quote",
]
