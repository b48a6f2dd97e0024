"""The benchmark's tests measure the shipped bundle, as the runtime's tests do."""

from tests.runtime.conftest import bundle_dir  # noqa: F401  (a fixture, used by name)
