"""clusterd installed the way a user installs it: `cmake --install` into a temporary prefix (and
with DESTDIR), the .deb built with cpack, inspected with dpkg-deb, unpacked into a throwaway root
and run from there, and installed, upgraded, removed and purged by dpkg in a throwaway root. The
systemd units pass `systemd-analyze verify`. The man page documents exactly the options and
subcommands `--help` lists and renders without a warning; the bash completion offers the
subcommands, options and fixed values, and clusterd accepts every value it offers.

The build directory is the one CLUSTERD_BIN was built in (BUILD/src/clusterd). The tools are
Debian's (tools/dev installs them): cmake/cpack, dpkg-deb and dpkg-shlibdeps (dpkg-dev), groff and
man (man-db), bash-completion, systemd-analyze (systemd). A missing one fails the test, naming the
package. The dpkg and completion tests that need a mount namespace of their own (root) skip
without one.
"""
import gzip
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile

import pytest

import harness

BUILD = os.path.dirname(os.path.dirname(os.path.abspath(harness.BIN)))
SOURCE = harness.SOURCE_DIR
MAN_SOURCE = os.path.join(SOURCE, "packaging", "man", "clusterd.1")
COMPLETION_SOURCE = os.path.join(SOURCE, "packaging", "completion", "clusterd.bash")
CONFIG_SOURCE = os.path.join(SOURCE, "config", "clusterd.toml")
MAINTAINER_SCRIPTS = {name: os.path.join(SOURCE, "packaging", "deb", name)
                      for name in ("postinst", "prerm", "postrm")}
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
SUBCOMMANDS = {"check", "status", "reload", "scale", "restart", "stop", "metrics", "ls", "top", "logs", "upgrade"}
DOCS = {"README.md", "configuration.md", "operations.md", "control-protocol.md", "servers.md", "install.md"}


def cache_value(name):
    """A value from the build directory's CMakeCache.txt."""
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        for line in f:
            m = re.match(r"%s:\w+=(.*)$" % re.escape(name), line)
            if m:
                return m.group(1)
    raise AssertionError("%s not in %s/CMakeCache.txt" % (name, BUILD))


def need(program, package):
    path = shutil.which(program)
    assert path, "%s not found: install the Debian package %s (tools/dev does)" % (program, package)
    return path


def run(args, **kwargs):
    """Runs a command to completion; fails the test with its output unless it exits 0."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL, **kwargs)
    assert result.returncode == 0, "%s exited %d\nstdout:\n%s\nstderr:\n%s" % (
        " ".join(args), result.returncode, result.stdout, result.stderr)
    return result


def pkg_config_dir(package, variable, fallback):
    """Where packaging/CMakeLists.txt puts files for the prefix /usr: pkg-config's answer."""
    if shutil.which("pkg-config"):
        result = subprocess.run(["pkg-config", "--variable=" + variable, package],
                                capture_output=True, text=True)
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    return fallback


def read(path, opener=open):
    with opener(path, "rt") as f:
        return f.read()


def files_under(root):
    """Every file below root, as absolute paths."""
    return {os.path.join(directory, name) for directory, _, names in os.walk(root) for name in names}


def version_line(binary):
    return run([binary, "--version"]).stdout.strip()


@pytest.fixture
def tmp():
    path = tempfile.mkdtemp(prefix="cd-pkg-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def cmake_install(prefix, destdir=None):
    env = dict(os.environ)
    env.pop("DESTDIR", None)
    if destdir:
        env["DESTDIR"] = destdir
    return run([cache_value("CMAKE_COMMAND"), "--install", BUILD, "--prefix", prefix], env=env)


# ---- (a) cmake --install

def expected_layout(bindir, mandir, docdir, completiondir, unitdir, sysconfdir):
    """The absolute path of every installed file."""
    files = {
        os.path.join(bindir, "clusterd"),
        os.path.join(mandir, "man1", "clusterd.1.gz"),
        os.path.join(completiondir, "clusterd"),
        os.path.join(unitdir, "clusterd.service"),
        os.path.join(unitdir, "clusterd.socket"),
        os.path.join(unitdir, "clusterd@.service"),
        os.path.join(unitdir, "clusterd@.socket"),
        os.path.join(sysconfdir, "clusterd", "clusterd.toml"),
    }
    return files | {os.path.join(docdir, name) for name in DOCS}


def debian_layout():
    """Where the files go for the prefix /usr: the config in /etc, the units and the completion
    where systemd's and bash-completion's pkg-config files say."""
    return expected_layout(
        "/usr/bin", "/usr/share/man", "/usr/share/doc/clusterd",
        pkg_config_dir("bash-completion", "completionsdir", "/usr/share/bash-completion/completions"),
        pkg_config_dir("systemd", "systemdsystemunitdir", "/usr/lib/systemd/system"),
        "/etc")


def check_installed_files(tree, destdir, prefix, layout, sysconfdir):
    """The files in `tree` (installed with DESTDIR `destdir`) are exactly `layout` (no test binary,
    no library), each with its source's content; the service names this install's binary and
    config."""
    assert {p[len(destdir):] for p in files_under(tree)} == layout
    on_disk = {os.path.basename(p): destdir + p for p in layout if "/completions/" not in p}
    binary = destdir + prefix + "/bin/clusterd"
    assert os.access(binary, os.X_OK)
    assert version_line(binary) == version_line(harness.BIN)
    assert read(on_disk["clusterd.1.gz"], gzip.open) == read(MAN_SOURCE)
    completion = destdir + [p for p in layout if p.endswith("/completions/clusterd")][0]
    assert read(completion) == read(COMPLETION_SOURCE)
    assert read(on_disk["clusterd.toml"]) == read(CONFIG_SOURCE)
    assert os.stat(on_disk["clusterd.toml"]).st_mode & 0o777 == 0o644
    assert read(on_disk["clusterd.socket"]) == read(os.path.join(SOURCE, "packaging", "systemd",
                                                                 "clusterd.socket"))
    service = read(on_disk["clusterd.service"])
    conf = "%s/clusterd/clusterd.toml" % sysconfdir
    assert "\nExecStart=%s/bin/clusterd -c %s\n" % (prefix, conf) in service
    assert "\nExecStartPre=%s/bin/clusterd check -c %s\n" % (prefix, conf) in service
    assert read(on_disk["clusterd@.socket"]) == read(os.path.join(SOURCE, "packaging", "systemd",
                                                                  "clusterd@.socket"))
    template = read(on_disk["clusterd@.service"])
    instance = "-c %s/clusterd/%%i.toml --control /run/clusterd/%%i.sock\n" % sysconfdir
    assert "\nExecStart=%s/bin/clusterd %s" % (prefix, instance) in template
    assert "\nExecStartPre=%s/bin/clusterd check %s" % (prefix, instance) in template


def test_cmake_install_into_a_prefix_puts_every_file_under_it(tmp):
    prefix = os.path.join(tmp, "prefix")
    cmake_install(prefix)
    layout = expected_layout(
        prefix + "/bin", prefix + "/share/man", prefix + "/share/doc/clusterd",
        prefix + "/share/bash-completion/completions", prefix + "/lib/systemd/system",
        prefix + "/etc")
    check_installed_files(tmp, "", prefix, layout, prefix + "/etc")


def test_cmake_install_to_usr_with_destdir_uses_debian_paths(tmp):
    cmake_install("/usr", destdir=tmp)
    check_installed_files(tmp, tmp, "/usr", debian_layout(), "/etc")


def test_cmake_install_again_keeps_an_edited_config(tmp):
    prefix = os.path.join(tmp, "prefix")
    cmake_install(prefix)
    config = os.path.join(prefix, "etc", "clusterd", "clusterd.toml")
    with open(config, "a") as f:
        f.write('\n# the operator\'s edit\n')
    edited = read(config)
    second = cmake_install(prefix)
    assert read(config) == edited
    # The shipped example lands beside it, to compare; neither is in install_manifest.txt, so
    # removing the installed files by the manifest leaves the operator's config.
    assert read(config + ".new") == read(CONFIG_SOURCE)
    assert "Kept: %s" % config in second.stdout
    manifest = read(os.path.join(BUILD, "install_manifest.txt")).split()
    assert os.path.join(prefix, "bin", "clusterd") in manifest
    assert not [p for p in manifest if "/etc/" in p]


# ---- (b) the .deb

@pytest.fixture(scope="module")
def deb():
    """The .deb that `cpack -G DEB` builds from this build directory, in a temporary directory."""
    need("dpkg-deb", "dpkg")
    need("dpkg-shlibdeps", "dpkg-dev")
    out = tempfile.mkdtemp(prefix="cd-deb-")
    try:
        run([cache_value("CMAKE_CPACK_COMMAND"), "-G", "DEB", "-B", out,
             "--config", os.path.join(BUILD, "CPackConfig.cmake")], cwd=BUILD)
        debs = [name for name in os.listdir(out) if name.endswith(".deb")]
        assert len(debs) == 1, os.listdir(out)
        yield os.path.join(out, debs[0])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def deb_field(deb, field):
    return run(["dpkg-deb", "--field", deb, field]).stdout.strip()


def test_deb_control_names_package_version_and_computed_depends(deb):
    version = cache_value("CMAKE_PROJECT_VERSION")
    assert os.path.basename(deb).startswith("clusterd_%s-" % version)
    assert deb_field(deb, "Package") == "clusterd"
    assert deb_field(deb, "Version").startswith(version + "-")
    assert deb_field(deb, "Maintainer")
    assert deb_field(deb, "Description").startswith("run a program as N workers")
    # dpkg-shlibdeps names the package of every library the binary links, and no other: with
    # CLUSTERD_SMALL_RUNTIME (the default) that is libc6 alone, else fmt, spdlog, toml++ too.
    depends = {d.strip().split()[0] for d in deb_field(deb, "Depends").split(",")}
    linked = re.findall(r"^\s*\S+ => (/\S+) \(", run(["ldd", harness.BIN]).stdout, re.M)
    assert linked, "the binary links no shared library?"
    packages = set()
    for path in linked:
        found = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if found.returncode != 0:  # merged /usr: dpkg knows the other spelling of the path
            found = run(["dpkg", "-S", os.path.realpath(path)])
        packages.add(found.stdout.split(":")[0].strip())
    # A library's shlibs entry may name a package its package provides (libspdlog1.10 →
    # libspdlog1.10-fmt9), so each owner must begin one of the Depends entries.
    missing = {p for p in packages if not any(d == p or d.startswith(p + "-") for d in depends)}
    assert not missing, (missing, depends)
    assert "libc6" in depends
    if cache_value("CLUSTERD_SMALL_RUNTIME") == "ON":
        assert depends == {"libc6"}, depends


def test_deb_marks_the_config_as_conffile_and_ships_only_clusterds_files(deb, tmp):
    control = os.path.join(tmp, "DEBIAN")
    run(["dpkg-deb", "--control", deb, control])
    assert read(os.path.join(control, "conffiles")).split() == ["/etc/clusterd/clusterd.toml"]
    for script in ("postinst", "prerm", "postrm"):
        assert os.stat(os.path.join(control, script)).st_mode & 0o777 == 0o755
        run(["sh", "-n", os.path.join(control, script)])
        # The configure step copies them into the build directory (packaging/deb/cpack.cmake),
        # and cpack packages that copy as it is.
        assert read(os.path.join(control, script)) == read(MAINTAINER_SCRIPTS[script]), (
            "the package's %s is not packaging/deb/%s: cmake --build %s re-runs the configure step "
            "that copies it" % (script, script, BUILD))

    listing = run(["dpkg-deb", "--contents", deb]).stdout.splitlines()
    files = {line.split()[-1].lstrip(".") for line in listing if line.startswith("-")}
    assert files == debian_layout()
    assert [line for line in listing if line.split()[-1] == "./usr/bin/clusterd"][0].startswith(
        "-rwxr-xr-x root/root")


def test_deb_unpacked_runs_and_checks_its_own_config(deb, tmp):
    root = os.path.join(tmp, "root")
    run(["dpkg", "-x", deb, root])
    binary = os.path.join(root, "usr", "bin", "clusterd")
    line = version_line(binary)
    assert line == version_line(harness.BIN)
    assert re.fullmatch(r"clusterd %s \(commit ([0-9a-f]{12}|unknown)\)"
                        % re.escape(cache_value("CMAKE_PROJECT_VERSION")), line), line
    # Stripped, as Debian ships binaries.
    sections = run(["readelf", "-S", "-W", binary]).stdout
    assert ".debug_info" not in sections

    config = os.path.join(root, "etc", "clusterd", "clusterd.toml")
    env = dict(os.environ, RUNTIME_DIRECTORY=tmp)
    env.pop("NOTIFY_SOCKET", None)
    result = subprocess.run([binary, "check", "-c", config], capture_output=True, text=True,
                            env=env, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert 'name = "example"' in result.stdout

    unitdir = pkg_config_dir("systemd", "systemdsystemunitdir", "/usr/lib/systemd/system")
    service = read(os.path.join(root, unitdir.lstrip("/"), "clusterd.service"))
    assert "\nExecStart=/usr/bin/clusterd -c /etc/clusterd/clusterd.toml\n" in service


# ---- (b) the .deb installed, upgraded, removed and purged by dpkg, in a throwaway root

# dpkg runs the maintainer scripts as it does for a root that is not the running system's:
# `--root=ROOT --force-script-chrootless` (an empty root has no /bin/sh to chroot into) runs them
# here with DPKG_ROOT=ROOT. Each dpkg runs in a mount namespace of its own whose /run is an empty
# tmpfs holding only /run/systemd/system, the sign of a running systemd the scripts look for: a
# script that ignored DPKG_ROOT would call systemctl, which is a fake on PATH that records the
# call (and even the real one could reach no service manager: its sockets in /run are hidden).
_SYSTEMD_RUNNING = ('mount -t tmpfs -o mode=0755 clusterd-test /run && mkdir -p /run/systemd/system '
                    '&& exec "$@"')
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SystemdHere:
    """A place to run commands as if systemd ran this machine, with a systemctl that records."""

    def __init__(self, directory):
        self.bin = os.path.join(directory, "bin")
        os.mkdir(self.bin)
        self.calls_path = os.path.join(directory, "systemctl.calls")
        harness.write_file(self.bin, "systemctl",
                           '#!/bin/sh\nprintf "%%s\\n" "$*" >> %s\n' % shlex.quote(self.calls_path),
                           mode=0o755)

    def run(self, args, env=None):
        full_env = dict(os.environ, PATH=self.bin + ":" + _SYSTEM_PATH)
        full_env.pop("DPKG_ROOT", None)
        full_env.update(env or {})
        return run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", _SYSTEMD_RUNNING,
                    "sh"] + list(args), env=full_env)

    def calls(self):
        """systemctl's command lines so far, and forgets them."""
        if not os.path.exists(self.calls_path):
            return []
        calls = read(self.calls_path).splitlines()
        os.unlink(self.calls_path)
        return calls


class ThrowawayRoot:
    """An empty root with an empty dpkg database, and dpkg run on it."""

    def __init__(self, directory):
        self.root = os.path.join(directory, "root")
        self.admindir = os.path.join(self.root, "var", "lib", "dpkg")
        for name in ("info", "updates", "triggers"):
            os.makedirs(os.path.join(self.admindir, name))
        open(os.path.join(self.admindir, "status"), "w").close()
        self.systemd = SystemdHere(directory)

    def path(self, absolute):
        return os.path.join(self.root, absolute.lstrip("/"))

    def dpkg(self, *args):
        """Runs dpkg on the root; returns the maintainer scripts it ran: [(script, its arguments)]."""
        # --force-depends: the empty database has none of the Depends (libc6, ...) installed.
        # --debug=2 logs each maintainer script dpkg runs, with its arguments.
        result = self.systemd.run(["dpkg", "--root=" + self.root, "--force-script-chrootless",
                                   "--force-depends", "--debug=2"] + list(args))
        return [(script, tuple(arguments.split())) for script, arguments in
                re.findall(r"fork/exec \S+/info/clusterd\.(\w+) \((.*)\)$", result.stderr, re.M)]

    def status(self):
        """`dpkg -l`'s two status letters and the version, or None when dpkg knows no clusterd."""
        result = subprocess.run(["dpkg-query", "--root=" + self.root, "-W",
                                 "-f=${db:Status-Abbrev}${Version}", "clusterd"],
                                capture_output=True, text=True)
        return result.stdout.replace(" ", "") if result.returncode == 0 else None

    def files(self):
        """Every file in the root but dpkg's database, as absolute paths inside the root."""
        return {p[len(self.root):] for p in files_under(self.root) if not p.startswith(self.admindir + "/")}


def repack(deb, directory, version, config_text=None):
    """The .deb again as VERSION, its binary told apart from the first's by bytes appended past the
    end of the ELF file (which the loader never reads: it is the same build, so --version says the
    same), and with config_text as its example config if given."""
    tree = os.path.join(directory, "tree-" + version)
    run(["dpkg-deb", "--raw-extract", deb, tree])
    control = os.path.join(tree, "DEBIAN", "control")
    text, count = re.subn(r"^Version: .*$", "Version: " + version, read(control), flags=re.M)
    assert count == 1
    harness.write_file(os.path.join(tree, "DEBIAN"), "control", text)
    with open(os.path.join(tree, "usr", "bin", "clusterd"), "ab") as f:
        f.write(b"\0clusterd package test: version %s\0" % version.encode())
    if config_text is not None:
        with open(os.path.join(tree, "etc", "clusterd", "clusterd.toml"), "w") as f:
            f.write(config_text)
    md5sums = os.path.join(tree, "DEBIAN", "md5sums")
    lines = []
    for line in read(md5sums).splitlines():
        path = line.split(None, 1)[1]
        with open(os.path.join(tree, path), "rb") as f:
            lines.append("%s  %s" % (hashlib.md5(f.read()).hexdigest(), path))
    harness.write_file(os.path.join(tree, "DEBIAN"), "md5sums", "\n".join(lines) + "\n")
    out = os.path.join(directory, "clusterd_%s.deb" % version)
    run(["dpkg-deb", "--root-owner-group", "--build", tree, out])
    return out


def packaged_binary(directory, version):
    """The binary that repack() put into VERSION's package."""
    return os.path.join(directory, "tree-" + version, "usr", "bin", "clusterd")


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def host_state():
    """What this machine has of clusterd's package: dpkg's record and the files, untouched by a
    test that installs into another root."""
    known = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}${Version}", "clusterd"],
                           capture_output=True, text=True)
    files = {}
    for path in ("/usr/bin/clusterd", "/etc/clusterd/clusterd.toml",
                 "/lib/systemd/system/clusterd.service", "/usr/lib/systemd/system/clusterd.service"):
        try:
            status = os.stat(path)
            files[path] = (status.st_ino, status.st_mtime_ns, status.st_size)
        except FileNotFoundError:
            files[path] = None
    return known.returncode, known.stdout, files


@harness.needs_private_runtime
def test_deb_installs_upgrades_removes_and_purges_in_a_throwaway_root(deb, tmp):
    need("dpkg", "dpkg")
    host_before = host_state()
    system = ThrowawayRoot(tmp)
    version = deb_field(deb, "Version")
    shipped_config = read(CONFIG_SOURCE)
    config = system.path("/etc/clusterd/clusterd.toml")
    binary = system.path("/usr/bin/clusterd")

    # Install: every file of the package in place, the binary runs, systemd left alone.
    assert system.dpkg("--install", deb) == [("postinst", ("configure",))]
    assert system.status() == "ii" + version
    assert system.files() == debian_layout()
    assert version_line(binary) == version_line(harness.BIN)
    assert read(config) == shipped_config
    assert system.systemd.calls() == []

    # The operator edits the config.
    assert 'workers = "auto"' in shipped_config
    edited = shipped_config.replace('workers = "auto"', "workers = 3") + "# the operator's edit\n"
    with open(config, "w") as f:
        f.write(edited)

    # Upgrade to a version with the same example config: the edited one is kept without a
    # question (stdin is /dev/null), the binary replaced.
    second = repack(deb, tmp, version + ".1")
    run(["dpkg", "--compare-versions", version + ".1", "gt", version])
    assert system.dpkg("--install", second) == [
        ("prerm", ("upgrade", version + ".1")), ("postrm", ("upgrade", version + ".1")),
        ("postinst", ("configure", version))]
    assert system.status() == "ii" + version + ".1"
    assert read(config) == edited
    assert file_bytes(binary) == file_bytes(packaged_binary(tmp, version + ".1"))
    assert version_line(binary) == version_line(harness.BIN)
    assert system.files() == debian_layout()
    assert system.systemd.calls() == []

    # Upgrade to a version with a changed example: non-interactively, --force-confold keeps the
    # operator's config and writes the new example beside it (docs/install.md).
    newer_config = shipped_config + "# a newer example\n"
    third = repack(deb, tmp, version + ".2", config_text=newer_config)
    system.dpkg("--force-confold", "--install", third)
    assert system.status() == "ii" + version + ".2"
    assert read(config) == edited
    assert read(config + ".dpkg-dist") == newer_config
    assert file_bytes(binary) == file_bytes(packaged_binary(tmp, version + ".2"))
    assert system.systemd.calls() == []

    # Remove: everything but the operator's config is gone.
    assert system.dpkg("--remove", "clusterd") == [("prerm", ("remove",)), ("postrm", ("remove",))]
    assert system.status() == "rc" + version + ".2"
    assert system.files() == {"/etc/clusterd/clusterd.toml", "/etc/clusterd/clusterd.toml.dpkg-dist"}
    assert read(config) == edited
    assert system.systemd.calls() == []

    # Purge: the config too, and the directories the package made.
    assert system.dpkg("--purge", "clusterd") == [("postrm", ("purge",))]
    assert system.status() is None
    assert system.files() == set()
    assert not os.path.exists(system.path("/etc/clusterd"))
    assert system.systemd.calls() == []

    assert host_state() == host_before


@harness.needs_private_runtime
def test_deb_upgrade_replaces_an_unedited_config_with_the_new_example(deb, tmp):
    system = ThrowawayRoot(tmp)
    version = deb_field(deb, "Version")
    config = system.path("/etc/clusterd/clusterd.toml")
    system.dpkg("--install", deb)
    newer_config = read(CONFIG_SOURCE) + "# a newer example\n"
    system.dpkg("--install", repack(deb, tmp, version + ".1", config_text=newer_config))
    assert system.status() == "ii" + version + ".1"
    assert read(config) == newer_config
    assert sorted(os.listdir(os.path.dirname(config))) == ["clusterd.toml"]
    assert system.systemd.calls() == []


@harness.needs_private_runtime
def test_deb_maintainer_scripts_tell_the_running_systemd_and_no_other(deb, tmp):
    """On the system dpkg installs into, the scripts reload systemd after the units change and stop
    the service before its binary goes; for another root (DPKG_ROOT) they leave this one alone."""
    control = os.path.join(tmp, "DEBIAN")
    run(["dpkg-deb", "--control", deb, control])
    systemd = SystemdHere(tmp)

    def calls(script, *arguments, env=None):
        systemd.run([os.path.join(control, script)] + list(arguments), env=env)
        return systemd.calls()

    reload_units = ["--system daemon-reload"]
    assert calls("postinst", "configure", "") == reload_units
    assert calls("postinst", "configure", "0.0.1-1") == reload_units
    assert calls("prerm", "upgrade", "9.9.9-1") == []        # a running clusterd keeps running
    assert calls("postrm", "upgrade", "9.9.9-1") == []
    assert calls("prerm", "remove") == ["--system stop clusterd.service clusterd.socket clusterd@*.service "
                                        "clusterd@*.socket"]
    assert calls("postrm", "remove") == reload_units
    assert calls("postrm", "purge") == reload_units

    other_root = {"DPKG_ROOT": os.path.join(tmp, "root")}
    for script, arguments in (("postinst", ("configure", "")), ("prerm", ("remove",)),
                              ("postrm", ("remove",)), ("postrm", ("purge",))):
        assert calls(script, *arguments, env=other_root) == [], script


# Runs in a mount namespace of its own over an empty /run: starts clusterd (its control socket in
# /run/clusterd, root's default), waits until its worker is ready, runs the postinst of an upgrade,
# then asks for the status again and stops clusterd (by its pid).
_POSTINST_UPGRADE = r"""set -eu
mount -t tmpfs -o mode=0755 clusterd-test /run
unset RUNTIME_DIRECTORY XDG_RUNTIME_DIR
out=$1 clusterd=$2 postinst=$3 bindir=$4
shift 4
"$clusterd" --name upgraded --workers 1 --listen 127.0.0.1:0 -- "$@" > "$out/clusterd.log" 2>&1 &
pid=$!
ready() { "$clusterd" status --control /run/clusterd/upgraded.sock --json 2>/dev/null | grep -q '"workers_ready":1'; }
tries=0
until ready; do
    tries=$((tries + 1)); [ $tries -lt 400 ] || { kill -TERM $pid; exit 1; }
    sleep 0.05
done
"$clusterd" status --control /run/clusterd/upgraded.sock --json > "$out/before.json"
PATH="$bindir:$PATH" "$postinst" configure 0.0.1-1 > "$out/postinst.out" 2> "$out/postinst.err"
"$clusterd" status --control /run/clusterd/upgraded.sock --json > "$out/after.json"
kill -TERM $pid
wait $pid
"""


@harness.needs_private_runtime
def test_deb_postinst_upgrades_a_running_clusterd_in_place(deb, tmp):
    control = os.path.join(tmp, "DEBIAN")
    run(["dpkg-deb", "--control", deb, control])
    bindir = os.path.join(tmp, "bin")
    os.mkdir(bindir)
    os.symlink(harness.BIN, os.path.join(bindir, "clusterd"))
    worker = [harness.PYTHON, harness.worker("http_worker.py")]
    run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", _POSTINST_UPGRADE, "sh", tmp, harness.BIN,
         os.path.join(control, "postinst"), bindir] + worker)
    before, after = (json.loads(read(os.path.join(tmp, name))) for name in ("before.json", "after.json"))
    assert after["pid"] == before["pid"]
    assert [w["pid"] for w in after["workers"]] == [w["pid"] for w in before["workers"]]
    said = read(os.path.join(tmp, "postinst.out"))
    assert said.startswith("clusterd: /run/clusterd/upgraded.sock: upgraded in place to "), said
    assert read(os.path.join(tmp, "postinst.err")) == ""
    assert "upgraded in place from_version=" in read(os.path.join(tmp, "clusterd.log"))


# ---- (c) the man page documents exactly what --help lists

def help_entries(text, section):
    """The names in a CLI11 help section ("Options:", "Subcommands:"): each entry line starts
    with two spaces, then the names ("-c,--config FILE", "check")."""
    entries = []
    lines = text.splitlines()
    start = lines.index(section)
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        entries.append(line.split()[0])
    return entries


def help_options():
    """Every option `clusterd --help` and each subcommand's --help list, short and long."""
    texts = [run([harness.BIN, "--help"]).stdout]
    subcommands = set(help_entries(texts[0], "Subcommands:"))
    texts += [run([harness.BIN, sub, "--help"]).stdout for sub in sorted(subcommands)]
    options = set()
    for text in texts:
        for entry in help_entries(text, "Options:"):
            options.update(entry.split(","))
    return options, subcommands


def man_sections(source):
    """{section name: its lines} of a roff man page."""
    sections, current = {}, None
    for line in source.splitlines():
        if line.startswith(".SH "):
            current = line[4:].strip().strip('"')
            sections[current] = []
        elif current:
            sections[current].append(line)
    return sections


def plain(roff):
    """A roff line as text: macro name, font escapes and quotes gone, \\- as -."""
    text = re.sub(r"^\.\w+\s*", "", roff)
    text = re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-").replace("\\&", "")
    return text.replace('"', "")


def tags(lines):
    """The tag line of every .TP entry."""
    return [plain(lines[i + 1]) for i, line in enumerate(lines[:-1]) if line == ".TP"]


def test_man_page_documents_exactly_the_options_and_subcommands_of_help():
    options, subcommands = help_options()
    assert "--output" in options, "clusterd --help lists no --output (interface §1 has it)"
    sections = man_sections(read(MAN_SOURCE))
    documented = set()
    for tag in tags(sections["OPTIONS"]):
        documented.update(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", tag))
    assert documented == options, (
        "in --help, not in the man page: %s; in the man page, not in --help: %s"
        % (sorted(options - documented), sorted(documented - options)))
    documented_subcommands = {tag.split()[0] for tag in tags(sections["SUBCOMMANDS"])}
    assert documented_subcommands == subcommands == SUBCOMMANDS


def test_man_page_has_the_sections_an_operator_looks_for():
    sections = man_sections(read(MAN_SOURCE))
    for name in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SUBCOMMANDS", "CONFIGURATION",
                 "SIGNALS", "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"):
        assert name in sections, name
    assert "/etc/clusterd/clusterd.toml" in "\n".join(sections["FILES"])


# ---- (d) the man page renders without a warning

def test_man_page_renders_without_groff_warnings():
    need("groff", "groff-base")
    result = subprocess.run(["groff", "-man", "-ww", "-z", MAN_SOURCE], capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "")


def test_installed_man_page_renders_with_man_without_warnings(tmp):
    need("man", "man-db")
    prefix = os.path.join(tmp, "prefix")
    cmake_install(prefix)
    page = os.path.join(prefix, "share", "man", "man1", "clusterd.1.gz")
    env = dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat", LC_ALL="C.UTF-8")
    result = subprocess.run(["man", "--warnings=all", "-l", page], capture_output=True, text=True,
                            env=env, timeout=30)
    assert (result.returncode, result.stderr) == (0, "")
    assert "clusterd - run a program as N workers" in result.stdout
    assert "--stop-signal SIGNAL" in result.stdout


# ---- (e) the bash completion

def complete(line, cwd=None, env=None, setup="", prefix=()):
    """What the completion offers for `line` with the cursor at its end: (COMPREPLY, the compopt
    options it set). COMP_WORDS is split as readline splits it: at blanks, and at ":" and "="
    (COMP_WORDBREAKS), a run of those being one word. prefix: a command that runs bash (nsenter
    into a mount namespace)."""
    need("bash", "bash")
    assert os.path.exists(BASH_COMPLETION), "install the Debian package bash-completion"
    words = re.findall(r"[=:]+|[^\s=:]+", line)
    if not words or line.endswith(" "):
        words.append("")
    script = r'''
source /usr/share/bash-completion/bash_completion
source "$1"
# compopt works only inside real completion; record what the function asks for instead.
compopt() { local IFS=' '; printf 'compopt %s\n' "$*" >&2; }
''' + setup + r'''
COMP_LINE=$2 COMP_POINT=${#2} COMP_CWORD=$3
shift 3
COMP_WORDS=("$@")
_clusterd clusterd "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''
    full_env = dict(os.environ)
    full_env.pop("RUNTIME_DIRECTORY", None)
    full_env.pop("XDG_RUNTIME_DIR", None)
    if env:
        full_env.update(env)
    result = subprocess.run(
        list(prefix) + ["bash", "-c", script, "bash", COMPLETION_SOURCE, line, str(len(words) - 1)] + words,
        capture_output=True, text=True, cwd=cwd, env=full_env, timeout=30)
    compopts = [w for l in result.stderr.splitlines() if l.startswith("compopt ") for w in l.split()[1:]]
    errors = [l for l in result.stderr.splitlines() if not l.startswith("compopt ")]
    assert result.returncode == 0 and not errors, result.stderr
    return [w for w in result.stdout.split("\n") if w], compopts


def test_completion_offers_the_subcommands_then_programs():
    assert set(complete("clusterd ")[0]) == SUBCOMMANDS
    # Once something is typed, PROGRAM may be any command too.
    assert "reload" in complete("clusterd rel")[0]
    offered = complete("clusterd slee")[0]
    assert "sleep" in offered and not SUBCOMMANDS & set(offered)


def test_completion_offers_every_option_of_help_and_nothing_else():
    options, _ = help_options()
    assert set(complete("clusterd -")[0]) == options
    # A client subcommand takes only what finds the instance, --json and --help; status --pss too.
    client = set(complete("clusterd stop -")[0])
    assert client == {"-h", "--help", "-c", "--config", "--name", "--control", "--json"}
    assert set(complete("clusterd status -")[0]) == client | {"--pss"}
    assert client | {"--pss"} <= options
    # top takes what finds the instance and --interval, not --json.
    assert set(complete("clusterd top -")[0]) == {"-h", "--help", "-c", "--config", "--name", "--control",
                                                   "--interval"}
    # logs takes what finds the instance, --json, and its own.
    logs_own = {"--slot", "-n", "--lines", "-f", "--follow", "-t", "--timestamps"}
    assert set(complete("clusterd logs -")[0]) == client | logs_own
    assert set(complete("clusterd upgrade -")[0]) == client | {"--binary"}
    # check takes the options of a run.
    assert set(complete("clusterd check -")[0]) == options - {"--json", "--pss", "--interval"} - logs_own - {"--binary"}


FIXED_VALUES = {
    "--workers": {"auto"},
    "--ready": {"exec", "notify"},
    "--output": {"inherit", "prefix"},
    "--log-level": {"trace", "debug", "info", "warn", "error"},
}


@pytest.mark.parametrize("option", sorted(FIXED_VALUES))
def test_completion_offers_the_fixed_values_of_an_option(option):
    assert set(complete("clusterd %s " % option)[0]) == FIXED_VALUES[option]
    assert set(complete("clusterd check %s " % option)[0]) == FIXED_VALUES[option]


def test_completion_completes_a_value_after_equals_and_a_short_option():
    assert complete("clusterd --output=p")[0] == ["prefix"]
    assert complete("clusterd -w a")[0] == ["auto"]
    assert complete("clusterd --log-level=w")[0] == ["warn"]


def check_accepts(*flags):
    code, _, err = harness.run_clusterd(["check", "--control", "none"] + list(flags) + ["/bin/true"])
    return code, err


def test_clusterd_accepts_every_value_the_completion_offers():
    for option in sorted(FIXED_VALUES):
        for value in FIXED_VALUES[option]:
            assert check_accepts(option, value) == (0, ""), (option, value)
    signals = complete("clusterd --stop-signal ")[0]
    assert {"TERM", "INT", "QUIT", "HUP", "KILL", "USR1", "USR2", "WINCH"} <= set(signals)
    assert complete("clusterd --stop-signal TE")[0] == ["TERM"]
    for name in signals:
        assert check_accepts("--stop-signal", name) == (0, ""), name


def toml_keys(path):
    """Every key config/clusterd.toml shows, set or commented out, but [[listen]] and [env]."""
    keys, section = set(), None
    for line in read(path).splitlines():
        m = re.match(r"^\[\[(\w+)\]\]", line) or re.match(r"^\[(\w+)\]", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^#?\s*([a-z_]+)\s*=\s*\S", line)
        if m and section not in ("listen", "env"):
            keys.add(m.group(1) if section is None else section + "." + m.group(1))
    return keys


def test_completion_offers_every_config_key_for_set():
    offered, compopts = complete("clusterd --set ")
    assert "nospace" in compopts            # the value follows the "=" directly
    assert "env." in offered
    keys = {k[:-1] for k in offered if k.endswith("=")}
    assert keys == toml_keys(CONFIG_SOURCE)
    for key in keys:                        # clusterd knows each (the value may be wrong for it)
        _, err = check_accepts("--set", key + "=x")
        assert "unknown key" not in err, err
    assert complete("clusterd --set restart.max")[0] == ["restart.max_delay="]
    assert complete("clusterd --set restart.delay=")[0] == []


def test_completion_offers_files_for_config_and_none_for_control(tmp):
    os.mkdir(os.path.join(tmp, "conf.d"))
    harness.write_file(tmp, "shop.toml", "")
    offered, _ = complete("clusterd -c %s/" % tmp)
    assert set(offered) == {tmp + "/shop.toml", tmp + "/conf.d"}
    assert set(complete("clusterd status --config=%s/sh" % tmp)[0]) == {tmp + "/shop.toml"}
    assert set(complete("clusterd --control ", cwd=tmp)[0]) == {"none", "shop.toml", "conf.d"}


@harness.needs_private_runtime
def test_completion_offers_the_names_of_running_instances(start_clusterd, tmp):
    # The completion lists every instance whose socket it finds, so it runs in the mount namespace
    # of the instance this test starts, where /run/clusterd and /tmp/clusterd-UID are empty but
    # for that instance's socket: another clusterd on this machine stays out of sight.
    # With neither $RUNTIME_DIRECTORY nor $XDG_RUNTIME_DIR, "shop" opens its socket there.
    shop = start_clusterd(["--name", "shop", "--", "/bin/sleep", "1000"], private_runtime=True,
                          env={"RUNTIME_DIRECTORY": "", "XDG_RUNTIME_DIR": ""})
    shared = harness.SHARED_CONTROL_DIRECTORIES
    assert os.path.dirname(shop.control_path()) in shared, shop.log_tail()
    in_namespace = ["nsenter", "--mount", "--target", str(shop.pid), "--"]
    assert complete("clusterd status --name ", prefix=in_namespace)[0] == ["shop"]

    # $RUNTIME_DIRECTORY is searched too (systemd's RuntimeDirectory=): its sockets, not its
    # other files.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(os.path.join(tmp, "cart.sock"))
        harness.write_file(tmp, "notes.sock.txt", "")
        offered = complete("clusterd status --name ", env={"RUNTIME_DIRECTORY": tmp}, prefix=in_namespace)[0]
        assert sorted(offered) == ["cart", "shop"]
        assert complete("clusterd stop --name c", env={"RUNTIME_DIRECTORY": tmp},
                        prefix=in_namespace)[0] == ["cart"]
    finally:
        listener.close()


def test_completion_hands_over_to_the_programs_own_completion_after_program(tmp):
    harness.write_file(tmp, "server", "#!/bin/sh\n", mode=0o755)
    # PROGRAM itself: commands and paths.
    assert complete("clusterd -w 2 ./ser", cwd=tmp)[0] == ["./server"]
    assert complete("clusterd check ./ser", cwd=tmp)[0] == ["./server"]
    # After PROGRAM the words are its own, whatever clusterd's options before it looked like
    # (":" and "=" split them into more words for readline).
    fake = "_fake() { COMPREPLY=(fake-arg); }; complete -F _fake fakeprog\n"
    for line in ("clusterd fakeprog ",
                 "clusterd -w 2 -l unix:/tmp/x.sock --set env.A=b -- fakeprog --x ",
                 "clusterd check --stop-signal=TERM fakeprog ",
                 "clusterd -- fakeprog -"):
        assert complete(line, setup=fake)[0] == ["fake-arg"], line
    # Not clusterd's options once PROGRAM's arguments begin.
    assert "--workers" not in complete("clusterd ./server --wor", cwd=tmp)[0]


# ---- (f) the systemd units pass systemd-analyze verify

def test_installed_units_pass_systemd_analyze_verify(tmp):
    """The units as `cmake --install` writes them (the .deb's differ only in the two paths of
    ExecStart= and ExecStartPre=, checked above), so every program they name exists: verify checks
    each unit's settings, that the socket has its service, that ExecStart='s and ExecReload='s
    programs are executable and that Documentation='s man page is there."""
    analyze = need("systemd-analyze", "systemd")
    need("man", "man-db")
    prefix = os.path.join(tmp, "prefix")
    cmake_install(prefix)
    unitdir = os.path.join(prefix, "lib", "systemd", "system")
    # The template units as two instances of them would be (verify needs an instance name).
    units = [os.path.join(unitdir, name) for name in ("clusterd.service", "clusterd.socket",
                                                      "clusterd@shop.service", "clusterd@shop.socket")]
    # man finds the installed clusterd(1) ahead of its usual places (the trailing ":").
    env = dict(os.environ, MANPATH=os.path.join(prefix, "share", "man") + ":")
    result = subprocess.run([analyze, "verify"] + units, capture_output=True, text=True, env=env,
                            timeout=60, cwd=tmp, stdin=subprocess.DEVNULL)
    ours = [line for line in result.stderr.splitlines()
            if "clusterd" in line or prefix in line]
    assert (result.returncode, ours) == (0, []), result.stderr
