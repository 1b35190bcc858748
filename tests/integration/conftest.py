"""pytest fixtures: a factory that starts clusterd and always cleans it up by pid."""
import os
import shutil
import tempfile

import pytest

import harness


def pytest_configure(config):
    if not harness.BIN or not os.access(harness.BIN, os.X_OK):
        raise pytest.UsageError("set CLUSTERD_BIN to the built clusterd binary (ctest does)")


@pytest.fixture
def tmpdir_short():
    """A short private directory (unix socket paths hold at most 107 bytes)."""
    path = tempfile.mkdtemp(prefix="cd-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_clusterd():
    started = []

    def start(args, **kwargs):
        instance = harness.Clusterd(args, **kwargs)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.cleanup()
