"""export.publish: a TUF repository that python-tuf's client accepts, served by a real HTTP server
on loopback (Python's http.server as a subprocess: nginx is not installed in CI yet)."""

from __future__ import annotations

import json

import pytest

from export import publish, sign

tuf_ngclient = pytest.importorskip("tuf.ngclient")


def client(tmp_path, folder, url):
    local = tmp_path / "device"
    local.mkdir(exist_ok=True)
    root = (folder / "metadata" / "1.root.json").read_bytes()  # the device's trust anchor
    return tuf_ngclient.Updater(str(local), f"{url}/metadata/", str(local), f"{url}/targets/", bootstrap=root)


def test_publish_revoke_rotate_as_a_client_sees_them(tmp_path, model, keys, served):
    folder, url = served
    keys_folder = tmp_path / "repo-keys"
    sign.main(["--model", str(model), "--key", str(keys["release"][0])])
    common = ["--repository", str(folder), "--keys", str(keys_folder)]
    assert publish.main([*common, "--model", str(model)]) == 0
    assert publish.main([*common, "--model", str(model)]) == 0
    assert sorted(p.name for p in (folder / "targets" / "imdb-lstm").iterdir()) == ["2.tar", "3.tar"]
    updater = client(tmp_path, folder, url)
    updater.refresh()
    info = updater.get_targetinfo("imdb-lstm/3.tar")
    assert info is not None and info.length == (folder / "targets" / "imdb-lstm" / "3.tar").stat().st_size
    assert publish.main([*common, "--model", str(model), "--revoke", "3"]) == 0
    assert publish.main([*common, "--rotate", "root"]) == 0
    assert publish.main([*common, "--rotate", "targets"]) == 0
    updater = client(tmp_path, folder, url)  # the device still trusts only 1.root.json: it follows the rotation
    updater.refresh()
    assert updater.get_targetinfo("imdb-lstm/3.tar") is None
    assert updater.get_targetinfo("imdb-lstm/2.tar") is not None
    assert json.loads((folder / "metadata" / "timestamp.json").read_text())["signed"]["expires"]


def test_unsigned_bundle_is_not_published(tmp_path, model, capsys):
    assert (
        publish.main(["--repository", str(tmp_path / "r"), "--keys", str(tmp_path / "k"), "--model", str(model)]) == 1
    )
    assert "not signed" in capsys.readouterr().err
