"""An in-memory DocumentRepository for the sans-IO ITI-41/ITI-43 tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from profiles.errors import GatewayError
from profiles.xds.repository_ports import StoredBlob, StoredDocument

REPOSITORY_ID = "1.2.3.4.5.200"


@dataclass
class FakeRepository:
    repository_unique_id: str = REPOSITORY_ID
    blobs: dict[str, bytes] = field(default_factory=dict)
    documents: dict[str, StoredDocument] = field(default_factory=dict)
    registered: list = field(default_factory=list)
    delivered: list = field(default_factory=list)
    refuse: GatewayError | None = None  # what the registry answers instead of success

    def store(self, content) -> StoredBlob:
        if not isinstance(content, bytes):
            with content.open() as f:
                content = f.read()
        sha1 = hashlib.sha1(content).hexdigest()
        self.blobs[sha1] = content
        return StoredBlob(sha1, len(content))

    def register(self, submission, documents, *, time, audit=None) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.registered.append(submission)
        self.documents.update({d.unique_id: d for d in documents})

    def deliver(self, submission, documents, *, time, audit=None) -> None:
        self.delivered.append((submission, tuple(documents)))

    def find(self, unique_ids):
        return {u: self.documents[u] for u in unique_ids if u in self.documents}

    def chunks(self, document: StoredDocument):
        data = self.blobs[document.sha1]
        yield data[:3]
        yield data[3:]

    def put(self, unique_id: str, data: bytes, mime_type: str = "text/plain") -> StoredDocument:
        blob = self.store(data)
        doc = StoredDocument(unique_id, blob.sha1, blob.size, mime_type, self.repository_unique_id)
        self.documents[unique_id] = doc
        return doc
