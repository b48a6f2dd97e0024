"""The server's one contact with uvicorn's non-public internals (runtime/serving/uvicorn_internals.py):
an upgrade of uvicorn that changes what it relies on fails here, naming the internal, before any
server test fails for a reason harder to see."""

from __future__ import annotations

import pytest

pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install '.[serve]')")

from runtime.serving import uvicorn_internals  # noqa: E402


def test_the_uvicorn_internals_the_server_relies_on_are_as_expected():
    problems = uvicorn_internals.check_internals()
    assert problems == [], (
        "uvicorn's internals changed; update runtime/serving/uvicorn_internals.py "
        "(and the uvicorn pin in pyproject.toml):\n" + "\n".join(problems)
    )


def test_every_method_the_connection_overrides_is_checked():
    """A new override must be added to the checked list: the list is what the upgrade test sees."""
    overridden = {
        name
        for name in vars(uvicorn_internals.GuardedHttpToolsProtocol)
        if not name.startswith("_") or name == "__init__"
    }
    checked = set(uvicorn_internals.METHODS[uvicorn_internals.HttpToolsProtocol])
    assert overridden <= checked, f"overridden but not checked: {sorted(overridden - checked)}"


def test_a_changed_internal_is_named(monkeypatch):
    """What a failure looks like: the internal named, with what was expected and what was found."""

    def send_400_response(self, message, extra):
        pass

    monkeypatch.setattr(uvicorn_internals.HttpToolsProtocol, "send_400_response", send_400_response)
    monkeypatch.delattr(uvicorn_internals.HttpToolsProtocol, "on_url")
    problems = "\n".join(uvicorn_internals.check_internals())
    assert "HttpToolsProtocol.send_400_response takes ('self', 'message', 'extra'), not ('self', 'msg')" in problems
    assert "HttpToolsProtocol.on_url is gone" in problems
