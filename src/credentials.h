// Resolves the `user` and `group` keys (names or numeric ids) into the ids a worker runs as, in
// the parent: the child of fork may not call NSS (protocols §3.1, §3.9).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "spawn_plan.h"

namespace clusterd {

// Ids a worker runs as (interface §2.6). The child applies them as setgroups(groups) →
// setgid(gid) → setuid(uid) (protocols §3.9).
struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, set as they are
  bool operator==(const Credentials&) const = default;
};

// What `user`/`group` mean for every worker.
struct WorkerUser {
  // nullopt: the worker keeps clusterd's own ids (neither key set, or they name the ids
  // clusterd already has), so the child changes nothing and needs no privilege.
  std::optional<Credentials> credentials;
  // HOME/USER/LOGNAME of `user`; nullopt unless `user` is set.
  std::optional<UserEnv> user_env;
};

// `user`: a name or uid with a passwd entry → its uid, its primary gid unless `group` is set,
// and its supplementary groups (getgrouplist). `group` alone: only the gid changes; the
// supplementary groups stay clusterd's own. Errors, as the config reports them:
// `unknown user "bob"`, `unknown group "x"`,
// `changing to user "nobody" needs root (or CAP_SETUID/CAP_SETGID)`, and without root a uid change
// also needs CAP_KILL (`... needs CAP_KILL as well, to stop its workers`).
// Reads the user and group databases (may block on NSS); call at load and reload, not per spawn
// if that matters.
tl::expected<WorkerUser, std::string> resolve_worker_user(const std::optional<std::string>& user,
                                                          const std::optional<std::string>& group);

// Whether `user` is a user resolve_worker_user accepts (a name, or a uid with a passwd entry):
// nullopt if so, else `unknown user "bob"` or why the lookup failed. Says nothing about privilege.
std::optional<std::string> check_user_known(const std::string& user);

// The uid `user` names as resolve_worker_user reads it; nullopt when it names none.
std::optional<uid_t> uid_of_user(const std::string& user);

// Whether `group` is a group resolve_worker_user accepts (a name, or any numeric gid): nullopt
// if so, else `unknown group "x"` or why the lookup failed.
std::optional<std::string> check_group_known(const std::string& group);

}  // namespace clusterd
