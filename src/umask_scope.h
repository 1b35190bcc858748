// Narrows the process umask for one scope, around a bind() that creates a socket file, so the
// file has no wider permissions for even a moment.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

namespace clusterd {

// Sets the process umask for its lifetime. clusterd is single-threaded (style §6) and forks no
// worker inside such a scope, so the process-wide value is ours alone for the calls it covers.
class UmaskScope {
 public:
  explicit UmaskScope(mode_t mask) : previous_(::umask(mask)) {}
  UmaskScope(const UmaskScope&) = delete;
  UmaskScope& operator=(const UmaskScope&) = delete;
  ~UmaskScope() { ::umask(previous_); }

 private:
  mode_t previous_;
};

}  // namespace clusterd
