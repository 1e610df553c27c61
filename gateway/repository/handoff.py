"""The XDR hand-off folder: each accepted submission as a folder another system
picks up (``[xdr] handoff_dir``).

Layout of one submission, ``<handoff_dir>/<time>-<random>/``::

    metadata.xml     lcm:SubmitObjectsRequest, hash/size/repositoryUniqueId filled in
    manifest.json    [{"uniqueId", "mimeType", "size", "sha1", "file"}, ...]
    documents/1      the first document's bytes, and so on

It is built under ``<handoff_dir>/.tmp/`` and renamed into place, so a reader
that ignores dot-folders never sees half a submission. Document files are copies,
never hard links: a consumer editing its file in place must not alter a blob.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from lxml import etree

from gateway.store.blobs import FileBlobStore
from profiles.xds.ebrim import submit_objects_request_to_xml
from profiles.xds.metadata import Submission
from profiles.xds.repository_ports import StoredDocument


def write_submission(
    folder: Path,
    blobs: FileBlobStore,
    submission: Submission,
    documents: Sequence[StoredDocument],
    *,
    time: str,
) -> Path:
    """Write one submission; return its folder."""
    name = f"{time}-{uuid.uuid4().hex[:12]}"
    tmp = folder / ".tmp" / name
    (tmp / "documents").mkdir(parents=True)
    try:
        manifest = []
        for i, doc in enumerate(documents, start=1):
            target = tmp / "documents" / str(i)
            _copy(blobs.path(doc.sha1), target)
            manifest.append(
                {
                    "uniqueId": doc.unique_id,
                    "mimeType": doc.mime_type,
                    "size": doc.size,
                    "sha1": doc.sha1,
                    "file": f"documents/{i}",
                }
            )
        xml = etree.tostring(
            submit_objects_request_to_xml(submission), xml_declaration=True, encoding="UTF-8"
        )
        _write(tmp / "metadata.xml", xml)
        _write(tmp / "manifest.json", json.dumps(manifest, indent=2).encode())
        final = folder / name
        os.replace(tmp, final)
        _fsync_dir(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _copy(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "rb") as f:
        os.fsync(f.fileno())


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
