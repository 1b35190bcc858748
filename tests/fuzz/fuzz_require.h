// A property a fuzz target checks: when it does not hold, the input is a reproducer. Ends the
// process the way libFuzzer and the replay driver both report (abort), naming the property.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace clusterd::fuzz {

inline void require(bool holds, const char* property, const std::string& detail = {}) {
  if (!holds) {
    std::fprintf(stderr, "fuzz property does not hold: %s\n%s\n", property, detail.c_str());
    std::abort();
  }
}

}  // namespace clusterd::fuzz
