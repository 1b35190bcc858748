// Resolves `user`/`group` into a worker's uid, gid and supplementary groups, and checks that
// clusterd may switch to them.
#include "credentials.h"
#include "errno_text.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>

namespace clusterd {

namespace {

struct UserEntry {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
};

// getpwnam_r(3) lists these as what some systems return for "no such entry" instead of 0 with
// a null result.
bool means_not_found(int error) {
  return error == 0 || error == ENOENT || error == ESRCH || error == EBADF || error == EPERM;
}

std::optional<std::uint32_t> parse_id(const std::string& text) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::uint32_t id = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
  // (uid_t)-1 means "unchanged" to setreuid(2) and friends, never a real id.
  if (error != std::errc{} || end != text.data() + text.size() ||
      id == std::numeric_limits<std::uint32_t>::max()) {
    return std::nullopt;
  }
  return id;
}

// Calls a getpw*_r / getgr*_r style `lookup(&entry, buffer, size, &result)` with a buffer that
// grows on ERANGE, and hands the entry to `use` while the buffer its strings point into is
// still alive. Returns the errno-style code; `found` says whether `use` was called.
template <typename Entry, typename Lookup, typename Use>
int lookup_entry(int sysconf_name, Lookup&& lookup, Use&& use, bool& found) {
  constexpr std::size_t max_buffer = 1 << 20;
  const long suggested = ::sysconf(sysconf_name);
  std::vector<char> buffer(suggested > 0 ? static_cast<std::size_t>(suggested) : 1024);
  for (;;) {
    Entry entry{};
    Entry* result = nullptr;
    const int error = lookup(&entry, buffer.data(), buffer.size(), &result);
    if (error == ERANGE && buffer.size() < max_buffer) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    found = error == 0 && result != nullptr;
    if (found) {
      use(*result);
    }
    return error;
  }
}

std::string lookup_failure(std::string_view what, const std::string& name, int error) {
  return "cannot look up " + std::string(what) + " \"" + name + "\": " + errno_text(error);
}

// A name first, then a number: a user literally named "1000" keeps its meaning (chown does the
// same).
tl::expected<UserEntry, std::string> find_user(const std::string& user) {
  UserEntry found_entry;
  const auto copy = [&found_entry](const passwd& pw) {
    found_entry = UserEntry{pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir};
  };
  bool found = false;
  int error = lookup_entry<passwd>(
      _SC_GETPW_R_SIZE_MAX,
      [&](passwd* entry, char* buffer, std::size_t length, passwd** result) {
        return ::getpwnam_r(user.c_str(), entry, buffer, length, result);
      },
      copy, found);
  if (found) {
    return found_entry;
  }
  if (!means_not_found(error)) {
    return tl::make_unexpected(lookup_failure("user", user, error));
  }
  if (const auto id = parse_id(user)) {
    // A uid without a passwd entry is refused: the worker's primary group and HOME come from
    // that entry, and interface §2.1 asks for "a known user".
    error = lookup_entry<passwd>(
        _SC_GETPW_R_SIZE_MAX,
        [&](passwd* entry, char* buffer, std::size_t length, passwd** result) {
          return ::getpwuid_r(static_cast<uid_t>(*id), entry, buffer, length, result);
        },
        copy, found);
    if (found) {
      return found_entry;
    }
    if (!means_not_found(error)) {
      return tl::make_unexpected(lookup_failure("user", user, error));
    }
  }
  return tl::make_unexpected("unknown user \"" + user + "\"");
}

tl::expected<gid_t, std::string> find_group(const std::string& name) {
  gid_t gid = 0;
  bool found = false;
  const int error = lookup_entry<group>(
      _SC_GETGR_R_SIZE_MAX,
      [&](group* entry, char* buffer, std::size_t length, group** result) {
        return ::getgrnam_r(name.c_str(), entry, buffer, length, result);
      },
      [&gid](const group& entry) { gid = entry.gr_gid; }, found);
  if (found) {
    return gid;
  }
  if (!means_not_found(error)) {
    return tl::make_unexpected(lookup_failure("group", name, error));
  }
  // A numeric gid needs no group entry: the gid is all a worker needs, and containers often
  // run with ids that have no name.
  if (const auto id = parse_id(name)) {
    return static_cast<gid_t>(*id);
  }
  return tl::make_unexpected("unknown group \"" + name + "\"");
}

tl::expected<std::vector<gid_t>, std::string> supplementary_groups(const UserEntry& user, gid_t gid) {
  // getgrouplist(3) includes `gid` itself; systemd does the same with User= and Group=.
  std::vector<gid_t> groups(16);
  for (;;) {
    int count = static_cast<int>(groups.size());
    if (::getgrouplist(user.name.c_str(), gid, groups.data(), &count) >= 0) {
      groups.resize(static_cast<std::size_t>(count));
      return groups;
    }
    // -1 with `count` set to the size needed; guard against a count that does not grow.
    if (static_cast<std::size_t>(count) <= groups.size()) {
      return tl::make_unexpected("cannot list the groups of user \"" + user.name + "\"");
    }
    groups.resize(static_cast<std::size_t>(count));
  }
}

std::vector<gid_t> own_groups() {
  const int count = ::getgroups(0, nullptr);
  std::vector<gid_t> groups(count > 0 ? static_cast<std::size_t>(count) : 0);
  if (count > 0) {
    const int got = ::getgroups(count, groups.data());
    groups.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  }
  return groups;
}

bool same_set(std::vector<gid_t> a, std::vector<gid_t> b) {
  std::sort(a.begin(), a.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  std::sort(b.begin(), b.end());
  b.erase(std::unique(b.begin(), b.end()), b.end());
  return a == b;
}

// Whether clusterd's effective capability set holds `capability` (capget(2); no libcap).
bool has_capability(int capability) {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) {
    return false;
  }
  const auto word = static_cast<std::size_t>(capability / 32);
  return (data[word].effective & (1U << (capability % 32))) != 0;
}

}  // namespace

tl::expected<WorkerUser, std::string> resolve_worker_user(const std::optional<std::string>& user,
                                                          const std::optional<std::string>& group) {
  WorkerUser result;
  if (!user && !group) {
    return result;
  }

  Credentials wanted;
  wanted.uid = ::getuid();
  wanted.gid = ::getgid();
  std::optional<UserEntry> user_entry;
  if (user) {
    auto found = find_user(*user);
    if (!found) {
      return tl::make_unexpected(found.error());
    }
    user_entry = std::move(*found);
    wanted.uid = user_entry->uid;
    wanted.gid = user_entry->gid;
    result.user_env = UserEnv{user_entry->name, user_entry->home};
  }
  if (group) {
    auto found = find_group(*group);
    if (!found) {
      return tl::make_unexpected(found.error());
    }
    wanted.gid = *found;
  }

  const std::vector<gid_t> current_groups = own_groups();
  if (user_entry) {
    auto groups = supplementary_groups(*user_entry, wanted.gid);
    if (!groups) {
      return tl::make_unexpected(groups.error());
    }
    wanted.groups = std::move(*groups);
  } else {
    // `group` alone "changes only the gid" (interface §2.6): the worker keeps clusterd's own
    // supplementary groups, which the child sets again unchanged.
    wanted.groups = current_groups;
  }

  // Real and effective ids both: a worker that should "stay as clusterd" must not end up with
  // a saved or effective id clusterd happened to carry.
  const bool uid_changes = wanted.uid != ::getuid() || wanted.uid != ::geteuid();
  const bool gid_changes = wanted.gid != ::getgid() || wanted.gid != ::getegid();
  const bool groups_change = !same_set(wanted.groups, current_groups);

  if (!uid_changes && !gid_changes && !groups_change) {
    // Nothing to do in the child: no setgroups/setgid/setuid, so an unprivileged clusterd can
    // name itself in `user` and its workers still start.
    return result;
  }
  const bool may_change_uid = !uid_changes || has_capability(CAP_SETUID);
  const bool may_change_gid = (!gid_changes && !groups_change) || has_capability(CAP_SETGID);
  if (!uid_changes && !gid_changes && !may_change_gid) {
    // Same uid and gid, only the group database differs from the groups clusterd runs with
    // (say, the user was added to a group after login). interface §2.6 lets clusterd run its
    // own ids without privilege, so the worker keeps clusterd's groups instead of failing.
    return result;
  }
  const std::string subject = user ? "user \"" + *user + "\"" : "group \"" + *group + "\"";
  if (!may_change_uid || !may_change_gid) {
    return tl::make_unexpected("changing to " + subject + " needs root (or CAP_SETUID/CAP_SETGID)");
  }
  // kill(2), and the parent-death signal sent as clusterd dies, reach a process of another uid
  // only with CAP_KILL: without it clusterd could neither stop such workers nor take them with it.
  if (uid_changes && !has_capability(CAP_KILL)) {
    return tl::make_unexpected("changing to " + subject + " needs CAP_KILL as well, to stop its workers");
  }
  result.credentials = std::move(wanted);
  return result;
}

std::optional<std::string> check_user_known(const std::string& user) {
  auto found = find_user(user);
  return found ? std::nullopt : std::optional(found.error());
}

std::optional<uid_t> uid_of_user(const std::string& user) {
  auto found = find_user(user);
  return found ? std::optional(found->uid) : std::nullopt;
}

std::optional<std::string> check_group_known(const std::string& group) {
  auto found = find_group(group);
  return found ? std::nullopt : std::optional(found.error());
}

}  // namespace clusterd
