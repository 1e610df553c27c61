"""The content-addressed blob store on disk."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

import gateway.store.blobs as blobs_module
from gateway.store.blobs import BlobNotFound, FileBlobStore

HOUR = timedelta(hours=1)


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def age(path: Path, seconds: float = 7200) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def blob_files(store: FileBlobStore) -> list[Path]:
    return sorted(p for p in store.root.rglob("*") if p.is_file() and ".tmp" not in p.parts)


def test_put_stores_by_sha1_and_reads_back(store: FileBlobStore) -> None:
    data = b"<ClinicalDocument/>"
    key, size = store.put(io.BytesIO(data))
    assert (key, size) == (sha1(data), len(data))
    assert store.path(key) == store.root / key[:2] / key[2:4] / key
    with store.open(key) as f:
        assert f.read() == data
    assert store.exists(key) and store.size(key) == len(data)
    assert list(store.tmp.iterdir()) == []


def test_put_streams_content_larger_than_a_chunk(store: FileBlobStore) -> None:
    data = os.urandom(blobs_module.CHUNK_SIZE * 3 + 17)
    key, size = store.put(io.BytesIO(data))
    assert (key, size) == (sha1(data), len(data))
    assert store.path(key).read_bytes() == data


def test_empty_content_is_a_blob_too(store: FileBlobStore) -> None:
    key, size = store.put(io.BytesIO(b""))
    assert (key, size) == (sha1(b""), 0)
    assert store.open(key).read() == b""


def test_identical_content_is_stored_once_and_refreshed(store: FileBlobStore) -> None:
    first = store.put(io.BytesIO(b"same"))
    age(store.path(first[0]))
    assert store.put(io.BytesIO(b"same")) == first
    assert blob_files(store) == [store.path(first[0])]
    # Storing it again counts as a use: the sweep's age test starts over.
    assert store.path(first[0]).stat().st_mtime > time.time() - 60
    assert list(store.tmp.iterdir()) == []


def test_a_failed_put_leaves_nothing_behind(store: FileBlobStore) -> None:
    class Broken(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def read(self, n: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise ConnectionResetError("peer went away")
            return b"x" * 1000

    with pytest.raises(ConnectionResetError):
        store.put(Broken())
    assert blob_files(store) == [] and list(store.tmp.iterdir()) == []


def test_keys_are_case_insensitive_hex(store: FileBlobStore) -> None:
    key, _ = store.put(io.BytesIO(b"abc"))
    assert store.exists(key.upper())
    assert store.open(key.upper()).read() == b"abc"


@pytest.mark.parametrize(
    "bad",
    [
        "../../../../etc/passwd",
        "../" + "a" * 37,
        "a" * 39,
        "a" * 41,
        "g" * 40,
        "aa/bb/" + "c" * 34,
        "a" * 39 + "\n",
        "",
        None,
        b"a" * 40,
    ],
)
def test_malformed_keys_are_refused(store: FileBlobStore, bad) -> None:
    for call in (store.path, store.open, store.exists, store.size, store.delete):
        with pytest.raises(ValueError):
            call(bad)


def test_adopt_refuses_a_malformed_key_and_keeps_the_file(
    store: FileBlobStore, tmp_path: Path
) -> None:
    spooled = tmp_path / "part"
    spooled.write_bytes(b"x")
    with pytest.raises(ValueError):
        store.adopt(spooled, "../../outside", 1)
    assert spooled.exists()


def test_missing_blob(store: FileBlobStore) -> None:
    missing = "0" * 40
    assert not store.exists(missing)
    with pytest.raises(BlobNotFound):
        store.open(missing)
    with pytest.raises(KeyError):  # what code outside gateway/ can catch
        store.size(missing)
    assert store.delete(missing) is False


def test_delete(store: FileBlobStore) -> None:
    key, _ = store.put(io.BytesIO(b"gone soon"))
    assert store.delete(key) is True
    assert not store.exists(key)


def test_adopt_moves_a_spooled_file_without_copying(store: FileBlobStore, tmp_path: Path) -> None:
    data = os.urandom(50_000)
    spooled = tmp_path / "spool-part"
    spooled.write_bytes(data)
    inode = spooled.stat().st_ino
    assert store.adopt(spooled, sha1(data), len(data)) == (sha1(data), len(data))
    assert not spooled.exists()
    assert store.path(sha1(data)).stat().st_ino == inode  # renamed, not copied
    assert store.open(sha1(data)).read() == data


def test_adopt_of_content_already_stored_consumes_the_spooled_file(
    store: FileBlobStore, tmp_path: Path
) -> None:
    key, size = store.put(io.BytesIO(b"twice"))
    spooled = tmp_path / "spool-part"
    spooled.write_bytes(b"twice")
    store.adopt(spooled, key, size)
    assert not spooled.exists()
    assert blob_files(store) == [store.path(key)]


def test_adopt_checks_the_size(store: FileBlobStore, tmp_path: Path) -> None:
    spooled = tmp_path / "spool-part"
    spooled.write_bytes(b"12345")
    with pytest.raises(ValueError, match="5 bytes"):
        store.adopt(spooled, sha1(b"12345"), 6)
    assert spooled.exists() and blob_files(store) == []


def test_adopt_across_file_systems_copies_and_verifies(
    store: FileBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace
    spool = tmp_path / "spool"
    spool.mkdir()

    def replace(src, dst):  # the spool folder is on another device
        if Path(src).parent == spool:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(blobs_module.os, "replace", replace)
    good = spool / "good"
    good.write_bytes(b"payload")
    assert store.adopt(good, sha1(b"payload"), 7) == (sha1(b"payload"), 7)
    assert not good.exists() and store.open(sha1(b"payload")).read() == b"payload"

    lying = spool / "lying"
    lying.write_bytes(b"tampered")
    with pytest.raises(ValueError, match="SHA-1"):
        store.adopt(lying, sha1(b"original"), 8)
    assert lying.exists() and not store.exists(sha1(b"original"))
    assert list(store.tmp.iterdir()) == []


def test_concurrent_puts_of_the_same_content(store: FileBlobStore) -> None:
    """Several request threads storing one document at once: one blob, every reader whole."""
    data = os.urandom(blobs_module.CHUNK_SIZE * 2 + 5)
    expected = (sha1(data), len(data))
    n = 8
    start = threading.Barrier(n)
    results: list[tuple[str, int]] = []
    reads: list[bytes] = []
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            results.append(store.put(io.BytesIO(data)))
            with store.open(expected[0]) as f:
                reads.append(f.read())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [expected] * n
    assert reads == [data] * n
    assert blob_files(store) == [store.path(expected[0])]
    assert list(store.tmp.iterdir()) == []


def test_sweep_removes_old_unreferenced_blobs_and_stale_temp_files(store: FileBlobStore) -> None:
    kept, _ = store.put(io.BytesIO(b"registered document"))
    orphan, orphan_size = store.put(io.BytesIO(b"crashed before its metadata committed"))
    young, _ = store.put(io.BytesIO(b"request still in flight"))
    for key in (kept, orphan):
        age(store.path(key))
    stale = store.tmp / "put-stale"
    stale.write_bytes(b"half a document")
    age(stale)
    writing = store.tmp / "put-now"
    writing.write_bytes(b"being written")
    (store.root / "README").write_text("not a blob")
    (store.root / "ab" / "cd").mkdir(parents=True, exist_ok=True)
    (store.root / "ab" / "cd" / "notes.txt").write_text("not a blob either")
    age(store.root / "README")
    asked: list[str] = []

    def referenced(key: str) -> bool:
        asked.append(key)
        return key == kept

    report = store.sweep(referenced, older_than=HOUR)
    assert (report.blobs_removed, report.bytes_removed) == (1, orphan_size)
    assert report.temp_files_removed == 1
    assert store.exists(kept) and store.exists(young) and not store.exists(orphan)
    assert not stale.exists() and writing.exists()
    assert (store.root / "README").exists() and (store.root / "ab" / "cd" / "notes.txt").exists()
    assert sorted(asked) == sorted([kept, orphan])  # young blobs are not even looked up


def test_sweep_spares_a_blob_stored_again_while_it_runs(store: FileBlobStore) -> None:
    """An orphan whose content a new request stores between the sweep's age check and
    its deletion is that request's document now: it must survive."""
    data = b"resubmitted document"
    key, _ = store.put(io.BytesIO(data))
    age(store.path(key))

    def referenced(k: str) -> bool:
        store.put(io.BytesIO(data))  # the concurrent request, at the worst moment
        return False

    report = store.sweep(referenced, older_than=HOUR)
    assert report.blobs_removed == 0
    assert store.open(key).read() == data
    assert list(store.tmp.iterdir()) == []


def test_a_blob_swept_before_a_put_is_written_anew(store: FileBlobStore) -> None:
    data = b"stored again after the sweep"
    key, _ = store.put(io.BytesIO(data))
    age(store.path(key))
    assert store.sweep(lambda k: False, older_than=HOUR).blobs_removed == 1
    assert store.put(io.BytesIO(data)) == (key, len(data))
    assert store.open(key).read() == data
