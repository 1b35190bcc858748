// The low fd block a spawn stages its child's fds on (spawn_fds.h).
#include "spawn_fds.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace clusterd {

tl::expected<SpawnFds, int> SpawnFds::open(int count) {
  SpawnFds block;
  for (int i = 0; i < std::max(count, 1); ++i) {
    if (auto added = block.add_slot(); !added) {
      return tl::make_unexpected(added.error());
    }
  }
  return block;
}

tl::expected<void, int> SpawnFds::add_slot() {
  const Fd opened(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!opened) {
    return tl::make_unexpected(errno);
  }
  // Above the first fds a program is handed or opens first (stdio, a socket-activated listener
  // at 3, a test's own), which others may close or replace, but well inside the 64 slots the
  // kernel's smallest fd table has, so the child's copy is no larger for it.
  Fd placeholder(::fcntl(opened.get(), F_DUPFD_CLOEXEC, lowest_slot));
  if (!placeholder) {
    return tl::make_unexpected(errno);
  }
  end_ = std::max(end_, placeholder.get() + 1);
  slots_.push_back(std::move(placeholder));
  return {};
}

tl::expected<std::vector<int>, int> SpawnFds::stage(std::span<const int> fds) {
  unstage();
  std::vector<int> staged;
  staged.reserve(fds.size());
  for (const int fd : fds) {
    if (staged_ + 1 == static_cast<int>(slots_.size())) {
      if (auto added = add_slot(); !added) {
        unstage();
        return tl::make_unexpected(added.error());
      }
    }
    const int target = slots_[static_cast<std::size_t>(staged_ + 1)].get();
    // dup3 replaces the placeholder in one step: the number is never free for another open.
    if (::dup3(fd, target, O_CLOEXEC) < 0) {
      const int error = errno;
      unstage();
      return tl::make_unexpected(error);
    }
    ++staged_;
    staged.push_back(target);
  }
  return staged;
}

void SpawnFds::unstage() noexcept {
  for (; staged_ > 0; --staged_) {
    // Cannot fail: both numbers are open and the target is below the fd limit.
    ::dup3(dev_null(), slots_[static_cast<std::size_t>(staged_)].get(), O_CLOEXEC);
  }
}

}  // namespace clusterd
