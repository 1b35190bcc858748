// The two ways a worker process is started: sharing clusterd's memory and fd table until its
// exec (posix_spawn's way, which copies nothing of a large pool), or forked, when the child
// changes ids or the kernel lacks what sharing needs.
#pragma once

#include <sys/types.h>

#include <optional>
#include <span>

#include <tl/expected.hpp>

#include "child_setup.h"
#include "fd.h"
#include "worker_exit.h"

namespace clusterd {

// How the child's exec went. pending: a forked child's exec-status pipe will tell.
// died_before_exec: the child ended during its setup without a failure of its own (a signal
// killed it); its exit says how.
enum class ExecState { pending, succeeded, failed, died_before_exec };

struct LaunchedChild {
  pid_t pid = -1;
  Fd pidfd;  // -1 where the kernel gives none (before Linux 5.2/5.3)
  ExecState exec_state = ExecState::pending;
  std::optional<StartFailure> exec_failure;  // with `failed`
  Fd exec_status;  // pending: the exec-status pipe's read end, non-blocking
};

// Opens what a shared launch needs (a stack, the low fd block) while clusterd's fd table is still
// small: call it at start, before the listeners are opened. A failure is not final: the next
// launch tries again, and forks meanwhile.
void prepare_launches();

// Starts a child that runs run_child(setup). `setup` holds everything but the fds, which come
// from `fds` (placed at 3, 4, …), `stdout_fd` and `stderr_fd` (-1: clusterd's own). Fails only
// when no child was created.
//
// The child shares clusterd's memory and fd table (CLONE_VM | CLONE_VFORK | CLONE_FILES), and
// clusterd waits until it exec'd or ended, so the result is final. It is forked instead, the
// result `pending` until the exec-status pipe tells, wherever that wait could last: when the
// child changes ids (the worker user could stop it with SIGSTOP between its setuid and its
// exec), and when `may_share` is false (its exec or chdir may wait on a network file system).
tl::expected<LaunchedChild, StartFailure> launch_child(ChildSetup& setup, std::span<const int> fds, int stdout_fd,
                                                       int stderr_fd, bool may_share);

}  // namespace clusterd
