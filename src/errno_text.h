// One wording for an errno in every message clusterd writes.
#pragma once

#include <string>
#include <system_error>

namespace clusterd {

// "No such file or directory": strerror's text, without strerror's shared buffer.
inline std::string errno_text(int error) { return std::generic_category().message(error); }

}  // namespace clusterd
