// Fuzz target `small_parsers`: the first byte picks a parser, the rest is its input. Durations,
// sizes, addresses and signal names, each with the round trip its formatter promises; the command
// line (arguments separated by NUL bytes); and a flag's value (-w, -l, --set) through
// build_config, whose error must name the flag.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "address.h"
#include "cli.h"
#include "config.h"
#include "duration.h"
#include "fuzz_require.h"

namespace {

using namespace clusterd;

std::vector<std::string> split_on_nul(std::string_view text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t end; (end = text.find('\0', start)) != std::string_view::npos; start = end + 1) {
    parts.emplace_back(text.substr(start, end - start));
  }
  parts.emplace_back(text.substr(start));
  return parts;
}

void flag_value(const ConfigOverrides& overrides) {
  const auto built = build_config(ConfigText{"fuzz.toml", "command = [\"./srv\"]\n"}, overrides);
  if (!built) {
    for (const auto& diagnostic : built.error()) {
      fuzz::require(!diagnostic.to_string().empty(), "a flag's error says what is wrong");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 8) {
    case 0:
      if (const auto duration = parse_duration(text)) {
        const std::string written = format_duration(*duration);
        fuzz::require(parse_duration(written) == duration, "a duration reads back as formatted", written);
      }
      break;
    case 1:
      (void)parse_size(text);
      break;
    case 2:
      if (const auto address = parse_address(text)) {
        const std::string written = format_address(*address);
        const auto again = parse_address(written);
        fuzz::require(again.has_value() && again->family == address->family && again->host == address->host &&
                          again->port == address->port && again->path == address->path,
                      "an address reads back as formatted", written);
      }
      break;
    case 3:
      if (const auto signal = parse_signal(text)) {
        const std::string written = signal_name(*signal);
        fuzz::require(parse_signal(written) == signal, "a signal reads back as named", written);
      }
      break;
    case 4: {
      const auto parsed = parse_cli(split_on_nul(text));
      if (const auto* exit = std::get_if<CliExit>(&parsed)) {
        fuzz::require(exit->code == 0 || !exit->text.empty(), "a usage error says what is wrong");
      }
      break;
    }
    case 5: {
      ConfigOverrides overrides;
      overrides.workers = std::string(text);
      flag_value(overrides);
      break;
    }
    case 6: {
      ConfigOverrides overrides;
      overrides.listen = split_on_nul(text);
      flag_value(overrides);
      break;
    }
    default: {
      ConfigOverrides overrides;
      overrides.sets = split_on_nul(text);
      flag_value(overrides);
      break;
    }
  }
  return 0;
}
