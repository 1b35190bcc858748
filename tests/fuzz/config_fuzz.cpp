// Fuzz target `config`: any bytes as a config file. build_config either fails with diagnostics
// that each name the file, or succeeds; then what `clusterd check` prints (to_toml) must be
// accepted again and print the same (the effective config round-trips).
#include <cstddef>
#include <cstdint>
#include <string>

#include "config.h"
#include "fuzz_require.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace clusterd;
  const ConfigText file{"fuzz.toml", std::string(reinterpret_cast<const char*>(data), size)};
  const auto first = build_config(file, {});
  if (!first) {
    fuzz::require(!first.error().empty(), "a config that fails says why");
    for (const auto& diagnostic : first.error()) {
      const std::string text = diagnostic.to_string();
      fuzz::require(text.rfind("fuzz.toml", 0) == 0 || text.rfind("--", 0) == 0,
                    "every diagnostic names the file", text);
    }
    return 0;
  }
  const std::string written = to_toml(*first);
  const auto second = build_config(ConfigText{"fuzz.toml", written}, {});
  fuzz::require(second.has_value(), "what check prints is accepted again",
                written + "\n" + (second ? "" : second.error().front().to_string()));
  fuzz::require(to_toml(*second) == written, "what check prints is printed the same again", written);
  return 0;
}
