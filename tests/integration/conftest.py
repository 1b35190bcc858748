"""pytest fixtures: a factory that starts clusterd and always cleans it up by pid; and the CI rule
on skips: under CI=true a skipped test not listed in tests/allowed-skips.txt fails."""
import os
import shutil
import tempfile

import pytest

import harness


ALLOWED_SKIPS_FILE = os.path.join(harness.SOURCE_DIR, "tests", "allowed-skips.txt")


def allowed_skips():
    with open(ALLOWED_SKIPS_FILE) as f:
        return {line.split()[0] for line in f if line.strip() and not line.startswith("#")}


def under_ci():
    return os.environ.get("CI") == "true"


_skips = []   # (test id, reason, listed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    # The id as the list writes it: FILE::TEST[PARAMS], whatever directory pytest ran from.
    test_id = os.path.basename(item.nodeid.split("::", 1)[0]) + "::" + item.nodeid.split("::", 1)[1]
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    listed = test_id in allowed_skips()
    _skips.append((test_id, reason, listed))
    if under_ci() and not listed:
        report.outcome = "failed"
        report.longrepr = "%s: skipped under CI but not listed in %s (%s)" % (test_id, ALLOWED_SKIPS_FILE, reason)


def pytest_terminal_summary(terminalreporter):
    for test_id, reason, listed in _skips:
        terminalreporter.write_line("clusterd-skip: %s: %s (%s)" % (test_id, reason, "listed" if listed else "not listed"))


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
