#!/usr/bin/python3
"""Runs a command under the process-level restrictions of a systemd service unit, as its ExecStart=
would run, on a machine where systemd is not PID 1 (a container, CI).

Usage: unit_sandbox.py UNIT_FILE -- COMMAND [ARG...]   (as root; execs COMMAND in place, same pid)

Applied from the unit's [Service] section: UMask=, SystemCallFilter= (allow lists and @groups,
expanded by `systemd-analyze syscall-filter`) with SystemCallErrorNumber=,
SystemCallArchitectures=native, RestrictAddressFamilies= (an allow list, checked on socket()),
NoNewPrivileges=, CapabilityBoundingSet= and AmbientCapabilities= (both through setpriv, which
then execs COMMAND as root: its capabilities become the bounding set, as under systemd).

Not applied: the mount namespace (ProtectSystem=, ProtectHome=, PrivateTmp=, PrivateDevices=,
ProtectKernel*=, ProtectControlGroups=), RestrictNamespaces=, LockPersonality=, RestrictRealtime=,
RestrictSUIDSGID= and the rest that restrict what a program may reach rather than the calls and
capabilities it needs to run. Only the unit's syntax that it uses is parsed: one value per line,
later lines adding to earlier ones, no specifiers.

The filter is loaded with libseccomp (libseccomp2, which systemd itself links) through ctypes.
"""
import ctypes
import ctypes.util
import errno
import os
import re
import socket
import subprocess
import sys

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_FLTATR_CTL_NNP = 3
SCMP_CMP_EQ = 4


def scmp_act_errno(number):
    return 0x00050000 | (number & 0x0000FFFF)


class ScmpArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def service_settings(path):
    """{key: [value, ...]} of the [Service] section, in order."""
    settings, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                key, value = line.split("=", 1)
                settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def syscall_groups():
    """{"@group": ["name" or "@group", ...]} as systemd-analyze lists them."""
    text = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True,
                          text=True, check=True).stdout
    groups, current = {}, None
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if line.startswith("@"):
            current = groups.setdefault(entry, [])
        elif current is not None:
            current.append(entry)
    return groups


def expand(names, groups):
    result = set()
    for name in names:
        if name.startswith("@"):
            result |= expand(groups[name], groups)
        else:
            result.add(name)
    return result


def allowed_syscalls(values):
    """The allow list that SystemCallFilter= lines give, or None for no filter. A deny list (~)
    is not supported: the units this serves use allow lists."""
    names = []
    for value in values:
        if not value:
            names = []
            continue
        if value.startswith("~"):
            raise SystemExit("unit_sandbox: deny-list SystemCallFilter= is not supported: " + value)
        names += value.split()
    return expand(names, syscall_groups()) if names else None


def load_filter(allowed, families, error_number, no_new_privileges):
    library = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    library.seccomp_init.restype = ctypes.c_void_p
    library.seccomp_init.argtypes = [ctypes.c_uint32]
    library.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    library.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(ScmpArgCmp)]
    library.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    library.seccomp_load.argtypes = [ctypes.c_void_p]
    context = library.seccomp_init(scmp_act_errno(error_number))
    if not context:
        raise SystemExit("unit_sandbox: seccomp_init failed")
    if library.seccomp_attr_set(context, SCMP_FLTATR_CTL_NNP, 1 if no_new_privileges else 0) != 0:
        raise SystemExit("unit_sandbox: seccomp_attr_set NNP failed")
    for name in sorted(allowed):
        number = library.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            continue  # not a system call of this architecture
        if name == "socket" and families is not None:
            for family in families:
                compare = ScmpArgCmp(0, SCMP_CMP_EQ, family, 0)
                if library.seccomp_rule_add_array(context, SCMP_ACT_ALLOW, number, 1, ctypes.byref(compare)) != 0:
                    raise SystemExit("unit_sandbox: seccomp rule for socket(%d) failed" % family)
            continue
        if library.seccomp_rule_add_array(context, SCMP_ACT_ALLOW, number, 0, None) != 0:
            raise SystemExit("unit_sandbox: seccomp rule for %s failed" % name)
    result = library.seccomp_load(context)
    if result != 0:
        raise SystemExit("unit_sandbox: seccomp_load: %s" % os.strerror(-result))


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        raise SystemExit("usage: unit_sandbox.py UNIT_FILE -- COMMAND [ARG...]")
    settings = service_settings(argv[1])
    command = argv[3:]

    last = lambda key, default=None: settings.get(key, [default])[-1]
    if last("UMask"):
        os.umask(int(last("UMask"), 8))
    if last("SystemCallArchitectures", "") not in ("", "native"):
        raise SystemExit("unit_sandbox: only SystemCallArchitectures=native is supported")
    families = None
    for value in settings.get("RestrictAddressFamilies", []):
        if value.startswith("~"):
            raise SystemExit("unit_sandbox: deny-list RestrictAddressFamilies= is not supported")
        families = (families or set()) | {getattr(socket, name) for name in value.split()}
    no_new_privileges = last("NoNewPrivileges", "no") in ("yes", "true", "on", "1")

    setpriv = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all"]
    bounding = " ".join(settings.get("CapabilityBoundingSet", [])).split()
    if bounding:
        setpriv.append("--bounding-set=-all," + ",".join(
            "+" + re.sub(r"^CAP_", "", name).lower() for name in bounding))
    if no_new_privileges:
        setpriv.append("--no-new-privs")
    if settings.get("AmbientCapabilities", [""])[-1]:
        raise SystemExit("unit_sandbox: AmbientCapabilities= with a value is not supported")

    allowed = allowed_syscalls(settings.get("SystemCallFilter", []))
    if families is not None and allowed is None:
        raise SystemExit("unit_sandbox: RestrictAddressFamilies= is applied only with a SystemCallFilter=")
    if allowed is not None:
        error_name = last("SystemCallErrorNumber")
        if not error_name:
            raise SystemExit("unit_sandbox: SystemCallFilter= without SystemCallErrorNumber= "
                             "kills the process; only an errno is supported")
        load_filter(allowed, families, getattr(errno, error_name), no_new_privileges)
    os.execvp(setpriv[0], setpriv + ["--"] + command)


if __name__ == "__main__":
    main(sys.argv)
