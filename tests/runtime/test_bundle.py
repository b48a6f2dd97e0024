"""The bundle's manifest accounts for every file in the bundle folder."""

from runtime import bundle


def test_every_file_of_the_bundle_is_recorded_with_its_sha256(bundle_dir):
    records = {record["file"]: record for record in bundle.file_records(bundle.read_manifest(bundle_dir))}
    files = sorted(path.name for path in bundle_dir.iterdir() if path.name != bundle.MANIFEST_NAME)
    assert [name for name in files if name not in records] == []
    for name in files:
        bundle.verify_file(bundle_dir, records[name])
