"""A Store that talks to a containerd Content gRPC service (containerd's ``content/proxy``)."""

from contentd.proxy.channel import dial
from contentd.proxy.reader import ProxyReaderAt
from contentd.proxy.store import ProxyStore
from contentd.proxy.writer import ProxyWriter

__all__ = ["ProxyReaderAt", "ProxyStore", "ProxyWriter", "dial"]
