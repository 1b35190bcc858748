// `output` as a string or as the [output] table, into OutputConfig.
#include "config_output.h"

#include <string>

#include "config_format.h"

namespace clusterd::config_detail {
namespace {

constexpr std::string_view boolean_expected = "true or false";
constexpr std::uint64_t min_rotated_size = 1024 * 1024;

std::optional<OutputMode> read_mode(const toml::node& node, ValueReader& read, const std::string& key) {
  const auto index = read.choice(node, key, {"inherit", "prefix"});
  if (!index) {
    return std::nullopt;
  }
  return *index == 0 ? OutputMode::inherit : OutputMode::prefix;
}

}  // namespace

void read_output(const toml::node& node, ValueReader& read, const PathBases& paths, OutputConfig& output) {
  if (!node.is_table()) {
    if (const auto mode = read_mode(node, read, "output")) {
      output.mode = *mode;
    }
    return;
  }
  const toml::table& table = *node.as_table();
  read.unknown_keys(table, "output", "output.");
  Reporter& report = read.report();
  const toml::node* mode_node = table.get("mode");
  std::optional<OutputMode> mode;
  if (mode_node != nullptr) {
    mode = read_mode(*mode_node, read, "output.mode");
  }
  if (const auto* file = table.get("file")) {
    if (auto value = read.nonempty_string(*file, "output.file", "a file path")) {
      output.file = paths.resolve(*file, report, *value);
    }
  }
  if (const auto* timestamps = table.get("timestamps")) {
    if (const auto* flag = timestamps->as_boolean()) {
      output.timestamps = flag->get();
    } else {
      report.wrong_type(*timestamps, "output.timestamps", boolean_expected);
    }
  }
  const toml::node* max_size = table.get("max_size");
  if (max_size != nullptr) {
    output.max_size = read.size(*max_size, "output.max_size", true);
    // A rotation renames up to `keep` files: done every few writes, it would take over the loop.
    if (output.max_size && *output.max_size < min_rotated_size) {
      report.at(max_size->source(), "output.max_size",
                "is below 1MiB: rotating that often would keep clusterd busy renaming files; give 1MiB or more");
      output.max_size.reset();
    }
  }
  const toml::node* keep = table.get("keep");
  if (keep != nullptr) {
    if (auto value = read.integer(*keep, "output.keep", 1, 100, "an integer 1-100")) {
      output.keep = static_cast<int>(*value);
    }
  }
  if (const auto* lines = table.get("recent_lines")) {
    if (auto value = read.integer(*lines, "output.recent_lines", 0, 100000, "an integer 0-100000")) {
      output.recent_lines = static_cast<int>(*value);
    }
  }

  // Every other key only works in prefix mode, so naming one is enough to choose it.
  const bool prefix_keys = table.size() > (mode_node != nullptr ? 1U : 0U);
  output.mode = mode.value_or(prefix_keys ? OutputMode::prefix : output.mode);
  if (mode == OutputMode::inherit) {
    for (const char* key : {"file", "timestamps", "recent_lines", "max_size", "keep"}) {
      if (const auto* value = table.get(key)) {
        report.at(value->source(), std::string("output.") + key,
                  "needs output.mode = \"prefix\": with \"inherit\" workers write to clusterd's stdout and "
                  "stderr themselves and clusterd never sees their lines; set mode = \"prefix\" or remove " +
                      std::string(key));
      }
    }
  }
  if (!table.contains("file")) {
    for (const toml::node* value : {max_size, keep}) {
      if (value != nullptr) {
        report.at(value->source(), value == max_size ? "output.max_size" : "output.keep",
                  "rotates output.file, which is not set; set output.file = \"/var/log/NAME/workers.log\" or "
                  "remove it");
      }
    }
  }
}

}  // namespace clusterd::config_detail
