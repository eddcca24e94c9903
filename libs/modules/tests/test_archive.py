from __future__ import annotations

import tracemalloc
import zipfile

import pytest

from modyard.modules.archive import (
    ALL_REJECTIONS,
    AbsolutePath,
    ArchiveLimits,
    ArchiveRejected,
    ArchiveTooLarge,
    DuplicateEntry,
    EmptyArchive,
    EncryptedEntry,
    ExpandsTooMuch,
    LinkEntry,
    NotAZip,
    OverlappingEntries,
    PathTraversal,
    TooDeep,
    TooManyEntries,
    read_archive,
)
from modyard.testing.archives import (
    compressed_bomb,
    duplicate_names_zip,
    encrypted_zip,
    make_zip,
    overlapping_zip,
    symlink_entry,
    zip_with_entry,
)

LIMITS = ArchiveLimits()


def test_regular_archive_is_read_with_its_top_folder_stripped() -> None:
    files = read_archive(
        make_zip({"acme/modyard.yaml": "name: acme", "acme/lib/run.js": "x"}), LIMITS
    )
    assert sorted(files) == ["lib/run.js", "modyard.yaml"]
    assert files["lib/run.js"] == b"x"


def test_every_rejection_has_its_own_problem_type() -> None:
    slugs = [rule.slug for rule in ALL_REJECTIONS if rule is not NotAZip]
    assert len(slugs) == len(set(slugs))
    assert all(slug.startswith("archive-") for slug in slugs)


@pytest.mark.parametrize(
    ("data", "limits", "rejection"),
    [
        (b"this is not a zip", LIMITS, NotAZip),
        (
            make_zip({"a": bytes(range(256)) * 20}, compression=zipfile.ZIP_STORED),
            ArchiveLimits(max_archive_bytes=1024),
            ArchiveTooLarge,
        ),
        (
            make_zip({f"f{i}": "x" for i in range(11)}),
            ArchiveLimits(max_entries=10),
            TooManyEntries,
        ),
        (
            make_zip({"zeros": b"\0" * 300_000}),
            ArchiveLimits(max_expanded_bytes=100_000),
            ExpandsTooMuch,
        ),
        (make_zip({"/".join(["d"] * 5) + "/f": "x"}), ArchiveLimits(max_depth=4), TooDeep),
        (zip_with_entry(zipfile.ZipInfo("/etc/passwd")), LIMITS, AbsolutePath),
        (zip_with_entry(zipfile.ZipInfo("C:/evil.txt")), LIMITS, AbsolutePath),
        (zip_with_entry(zipfile.ZipInfo("a/../../evil.txt")), LIMITS, PathTraversal),
        (zip_with_entry(zipfile.ZipInfo("a\\..\\evil.txt")), LIMITS, PathTraversal),
        (zip_with_entry(symlink_entry("link")), LIMITS, LinkEntry),
        (duplicate_names_zip(), LIMITS, DuplicateEntry),
        (overlapping_zip(), LIMITS, OverlappingEntries),
        (encrypted_zip(), LIMITS, EncryptedEntry),
        (zip_with_entry(zipfile.ZipInfo("only-a-folder/")), LIMITS, EmptyArchive),
    ],
)
def test_hostile_archives_are_refused_by_their_rule(
    data: bytes, limits: ArchiveLimits, rejection: type[ArchiveRejected]
) -> None:
    with pytest.raises(rejection) as caught:
        read_archive(data, limits)
    assert type(caught.value) is rejection
    assert caught.value.detail


def test_expanded_size_is_counted_from_the_data_not_the_headers() -> None:
    data = bytearray(make_zip({"zeros": b"\0" * 300_000}))
    # Lie in the central directory: claim the entry expands to 10 bytes.
    central = data.find(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    with pytest.raises((ExpandsTooMuch, NotAZip)):
        read_archive(bytes(data), ArchiveLimits(max_expanded_bytes=100_000))


def test_case_variants_of_one_name_count_as_duplicates() -> None:
    with pytest.raises(DuplicateEntry):
        read_archive(make_zip({"AppCell.json": "{}", "appcell.JSON": "{}"}), LIMITS)


@pytest.mark.parametrize(
    ("compression", "expanded"),
    [
        pytest.param(zipfile.ZIP_BZIP2, 200 * 1024 * 1024, id="bzip2"),
        pytest.param(zipfile.ZIP_LZMA, 100 * 1024 * 1024, id="lzma"),
    ],
)
def test_bzip2_and_lzma_bombs_are_refused_before_they_expand(
    compression: int, expanded: int
) -> None:
    # zipfile gives these decompressors a whole compressed block with no output bound: the old
    # reader held the entire expansion in memory before the 1 MB cap below could count it.
    data = compressed_bomb(compression, expanded)
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveRejected) as caught:
            read_archive(data, ArchiveLimits(max_expanded_bytes=1024 * 1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.slug == "archive-compression-unsupported", caught.value.detail
    assert caught.value.entry == "zeros.bin"
    assert "deflate" in caught.value.detail
    assert peak < 4 * 1024 * 1024, f"reading the bomb peaked at {peak} bytes"


def test_stored_and_deflated_entries_are_read() -> None:
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        files = read_archive(make_zip({"a.txt": "x" * 1000}, compression=compression), LIMITS)
        assert files["a.txt"] == b"x" * 1000
