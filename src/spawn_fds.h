// A block of low fd numbers where a spawn puts the fds its child inherits, so the child can copy
// just the bottom of clusterd's fd table instead of the thousands of fds a large pool holds.
#pragma once

#include <span>
#include <vector>

#include <tl/expected.hpp>

#include "fd.h"

namespace clusterd {

// Each number of the block holds /dev/null (read-only) while no spawn uses it. A spawn
// duplicates the fds its child needs onto the block (stage), the child unshares its fd table
// below end() (close_range CLOSE_RANGE_UNSHARE copies only those numbers), and the spawn puts
// /dev/null back (unstage) once the child has exec'd. One block serves every spawn: clusterd is
// single-threaded and a spawn waits for its child's exec (CLONE_VFORK).
class SpawnFds {
 public:
  static constexpr int lowest_slot = 16;

  // Opens `count` placeholders at the lowest free numbers from lowest_slot: call it before the
  // table fills up.
  static tl::expected<SpawnFds, int> open(int count);

  // A /dev/null fd inside the block that is never staged over (the child's stdin).
  int dev_null() const { return slots_.front().get(); }
  // Duplicates each of `fds` onto a placeholder and returns the numbers, in order; grows the
  // block when it is too small (the new numbers may be higher, which only costs the child more).
  // An errno when a dup3 or an open fails; what was staged is unstaged then.
  tl::expected<std::vector<int>, int> stage(std::span<const int> fds);
  // Puts /dev/null back on every staged number, closing the duplicates.
  void unstage() noexcept;
  // One above the highest number of the block.
  int end() const { return end_; }

 private:
  SpawnFds() = default;
  tl::expected<void, int> add_slot();

  std::vector<Fd> slots_;  // slots_[0] is dev_null(), never staged
  int staged_ = 0;         // slots_[1 .. staged_] hold duplicates
  int end_ = 0;
};

}  // namespace clusterd
