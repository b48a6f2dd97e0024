"""runtime.update against a TUF repository served over loopback HTTP: updates, rollback, and the
faults of issue 37; after each fault `current` is unchanged and no half-written version is left."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from export import publish, sign
from runtime import update

pytest.importorskip("tuf.ngclient")


@pytest.fixture
def fleet(tmp_path, model, keys, served):
    folder, url = served
    sign.main(["--model", str(model), "--key", str(keys["release"][0])])
    common = ["--repository", str(folder), "--keys", str(tmp_path / "repo-keys")]

    def publish_model(*extra):
        assert publish.main([*common, "--model", str(model), *extra]) == 0

    def run(*extra, trust="release"):
        return update.main(
            [
                "--repository",
                url,
                "--models",
                str(tmp_path / "device"),
                "--trust",
                str(keys[trust][1]),
                "--root",
                str(folder / "metadata" / "1.root.json"),
                *extra,
            ]
        )

    publish_model()
    return {
        "repository": folder,
        "device": tmp_path / "device",
        "publish": publish_model,
        "run": run,
        "model": model,
        "common": common,
        "url": url,
        "trust": keys["release"][1],
    }


def state(device):
    """What the device serves and what it holds (no hidden leftovers allowed)."""
    hidden = [p.name for p in [*device.iterdir(), *(device / "versions").iterdir()] if p.name.startswith(".")]
    assert hidden == [".lock"], hidden
    return update.current_version(device), update.installed(device)


def test_update_twice_then_roll_back(fleet):
    assert fleet["run"]() == 0
    assert state(fleet["device"]) == (2, [2])
    assert fleet["run"]() == 0  # up to date
    fleet["publish"]()
    assert fleet["run"]() == 0
    assert state(fleet["device"]) == (3, [2, 3])
    assert (fleet["device"] / "current" / "manifest.json").is_file()
    assert update.main(["--models", str(fleet["device"]), "--rollback"]) == 0
    assert state(fleet["device"]) == (2, [2, 3])


def _tar(fleet, version):
    return fleet["repository"] / "targets" / "imdb-lstm" / f"{version}.tar"


@pytest.mark.parametrize("fault", ["tampered", "endless"])
def test_changed_target_is_refused(fleet, fault, capsys):
    assert fleet["run"]() == 0
    fleet["publish"]()
    data = bytearray(_tar(fleet, 3).read_bytes())
    if fault == "tampered":
        data[len(data) // 2] ^= 1
    else:
        data += b"\0" * 1_000_000
    _tar(fleet, 3).write_bytes(bytes(data))
    assert fleet["run"]() == 1
    assert capsys.readouterr().err.startswith("error:")
    assert state(fleet["device"]) == (2, [2])


def test_untrusted_signer_is_refused(fleet, capsys):
    assert fleet["run"](trust="stranger") == 1
    assert "signature not valid" in capsys.readouterr().err
    assert update.current_version(fleet["device"]) is None and update.installed(fleet["device"]) == []


def test_replayed_metadata_is_refused(fleet, capsys):
    metadata = fleet["repository"] / "metadata"
    old = {name: (metadata / name).read_bytes() for name in ("timestamp.json", "snapshot.json", "targets.json")}
    fleet["publish"]()
    assert fleet["run"]() == 0
    for name, data in old.items():  # an attacker serves the older, validly signed metadata
        (metadata / name).write_bytes(data)
    assert fleet["run"]() == 1
    assert "error:" in capsys.readouterr().err
    assert state(fleet["device"]) == (3, [3])


def test_expired_timestamp_is_refused(fleet, monkeypatch, capsys):
    monkeypatch.setitem(publish.EXPIRY, "timestamp", timedelta(days=-1))
    assert publish.main([*fleet["common"], "--refresh"]) == 0
    assert fleet["run"]() == 1
    assert "expired" in capsys.readouterr().err.lower()


def test_model_that_does_not_load_is_refused(fleet, keys, capsys):
    assert fleet["run"]() == 0
    with open(fleet["model"] / "model.cached.tflite", "ab") as handle:
        handle.write(b"junk")  # re-signed, so only the bundle's own checks can catch it
    (fleet["model"] / "model.cached.onnx").write_bytes(b"junk")
    sign.main(["--model", str(fleet["model"]), "--key", str(keys["release"][0])])
    fleet["publish"]()
    assert fleet["run"]() == 1
    assert "does not load" in capsys.readouterr().err
    assert state(fleet["device"]) == (2, [2])


def test_two_updaters_at_once(fleet, capsys):
    fleet["device"].mkdir()
    with update.locked(fleet["device"]):
        assert fleet["run"]() == update.BUSY
    assert "another updater" in capsys.readouterr().err
    assert fleet["run"]() == 0


def test_leftovers_of_a_killed_run_are_removed(fleet):
    assert fleet["run"]() == 0
    device = fleet["device"]
    (device / "versions" / ".3.999").mkdir()  # killed while unpacking
    (device / ".download.999.tar").write_bytes(b"half")  # killed while downloading
    os.symlink("versions/3", device / ".current.999")  # killed before the switch
    fleet["publish"]()
    assert fleet["run"]() == 0
    assert state(device) == (3, [2, 3])


def test_service_prints_the_update_timer(capsys):
    from runtime import service

    assert service.main(["--update-timer"]) == 0
    out = capsys.readouterr().out
    assert "-m runtime.update --repository" in out and "OnUnitActiveSec=6h" in out


@pytest.mark.parametrize("member", ["link", "../escape", "sub/file"])
def test_unsafe_archive_members_are_refused(tmp_path, member):
    import io
    import tarfile

    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo(member)
        if member == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(update.UpdateError, match="not a plain file"):
        update.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape").exists()
