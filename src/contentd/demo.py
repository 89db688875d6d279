"""A short tour of the library: ingest (with an interrupted, resumed write), read, label, walk."""

from __future__ import annotations

import io
import sys

from contentd import Descriptor, Info, LocalStore, MemoryLabelStore, read_blob, write_blob
from contentd.content.digest import digest_of


def main(root: str) -> int:
    store = LocalStore(root, label_store=MemoryLabelStore())
    data = b"hello from contentd\n" * 1000
    dgst = digest_of(data)
    w = store.writer("demo-ref", total=len(data), expected=dgst)
    w.write(data[:5000])
    w.close()  # interrupted: the ingest stays on disk
    print(f"interrupted ingest: {store.status('demo-ref')}")
    write_blob(store, "demo-ref", io.BytesIO(data), Descriptor(digest=dgst, size=len(data)))
    store.update(Info(digest=dgst, labels={"demo": "yes"}), "labels.demo")
    print(f"committed {dgst} ({store.info(dgst).size} bytes) under {store.root}")
    assert read_blob(store, dgst) == data
    for info in store.walk("labels.demo==yes"):
        print(f"walk: {info.digest} size={info.size} labels={dict(info.labels or {})}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "var/content"))
