// Validates the [[listen]] tables (or the --listen flags merged in their place) into
// ListenerConfigs: name, address, backlog, mode, ipv6_only and reuseport of each.
#include "config_listeners.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>

#include "address.h"
#include "config_paths.h"

namespace clusterd::config_detail {
namespace {

// "0660" → 0660: octal digits only, at most 07777.
std::optional<unsigned> parse_mode(std::string_view text) {
  if (text.empty() || text.size() > 5) {
    return std::nullopt;
  }
  unsigned mode = 0;
  for (const char c : text) {
    if (c < '0' || c > '7') {
      return std::nullopt;
    }
    mode = mode * 8 + static_cast<unsigned>(c - '0');
  }
  if (mode > 07777) {
    return std::nullopt;
  }
  return mode;
}

// One [[listen]] table but its name; nullopt after reporting what is wrong with it.
std::optional<ListenerConfig> listener_settings(const toml::table& table, const std::string& prefix,
                                                ValueReader& read, const PathBases& paths) {
  Reporter& report = read.report();
  constexpr std::string_view address_expected = "an address such as \":8000\" or \"unix:/run/app.sock\"";
  ListenerConfig listener;
  bool valid = true;
  const toml::node* address_node = table.get("address");
  bool address_ok = false;
  if (address_node == nullptr) {
    report.at(table.source(), prefix + "address",
              "expected " + std::string(address_expected) + ", found nothing");
  } else if (auto text = read.string(*address_node, prefix + "address", address_expected)) {
    if (auto address = parse_address(*text)) {
      listener.address = *address;
      address_ok = true;
      if (address->family == AddressFamily::unix_path) {
        listener.address.path = paths.resolve(*address_node, report, address->path);
        // sun_path has to hold the absolute path, which is what clusterd binds: 108 bytes with
        // the NUL (unix(7)), the limit parse_address applies to the path as written.
        constexpr std::size_t max_unix_path = 107;
        if (listener.address.path.size() > max_unix_path) {
          report.at(address_node->source(), prefix + "address",
                    "unix socket path is " + std::to_string(listener.address.path.size()) + " bytes as " +
                        "an absolute path (\"" + listener.address.path + "\"), the limit is " +
                        std::to_string(max_unix_path));
          address_ok = false;
        }
      }
    } else {
      report.at(address_node->source(), prefix + "address", address.error());
    }
  }
  valid = address_ok;
  const bool is_unix = address_ok && listener.address.family == AddressFamily::unix_path;
  const bool is_ipv6 = address_ok && listener.address.family == AddressFamily::ipv6;
  listener.ipv6_only = is_ipv6 && !listener.address.any_dual_stack;

  if (const auto* backlog = table.get("backlog")) {
    const auto value = read.integer(*backlog, prefix + "backlog", 1, std::numeric_limits<int>::max(),
                                    "an integer of at least 1");
    valid = valid && value;
    listener.backlog = static_cast<int>(value.value_or(listener.backlog));
  }
  if (const auto* mode = table.get("mode")) {
    constexpr std::string_view expected = "an octal mode such as \"0660\"";
    const auto text = read.string(*mode, prefix + "mode", expected);
    auto value = text ? parse_mode(*text) : std::nullopt;
    if (text && !value) {
      report.bad_value(*mode, prefix + "mode", expected);
    } else if (value && address_ok && !is_unix) {
      report.at(mode->source(), prefix + "mode",
                "mode applies only to unix: addresses, not " + report.found(*address_node, false));
      value.reset();
    }
    valid = valid && value;
    listener.mode = value.value_or(listener.mode);
  }
  if (const auto* v6 = table.get("ipv6_only")) {
    const auto* flag = v6->as_boolean();
    if (flag == nullptr) {
      report.wrong_type(*v6, prefix + "ipv6_only", "true or false");
      valid = false;
    } else if (address_ok && !is_ipv6) {
      report.at(v6->source(), prefix + "ipv6_only",
                "ipv6_only applies only to IPv6 addresses, not " + report.found(*address_node, false));
      valid = false;
    } else {
      listener.ipv6_only = flag->get();
    }
  }
  if (const auto* reuseport = table.get("reuseport")) {
    const auto index = read.choice(*reuseport, prefix + "reuseport", {"shared", "per-slot"});
    if (index && *index == 1 && is_unix) {
      // SO_REUSEPORT groups exist for TCP here: a unix path names one socket file, so a second
      // socket cannot be bound to it (interface §2.1).
      report.at(reuseport->source(), prefix + "reuseport",
                "\"per-slot\" applies only to TCP addresses, not " + report.found(*address_node, false));
      valid = false;
    } else if (index) {
      listener.reuseport = *index == 1 ? ReusePort::per_slot : ReusePort::shared;
    } else {
      valid = false;
    }
  }
  return valid ? std::optional(std::move(listener)) : std::nullopt;
}

}  // namespace

ListenerTables read_listeners(const toml::node& node, ValueReader& read, const PathBases& paths) {
  Reporter& report = read.report();
  ListenerTables out;
  const auto* array = node.as_array();
  if (array == nullptr || !array->is_array_of_tables()) {
    if (array == nullptr || !array->empty()) {
      report.wrong_type(node, "listen", "an array of tables ([[listen]])");
    }
    return out;
  }
  std::vector<std::string> names;
  std::vector<const toml::node*> name_nodes;  // the name as written; null for a default fdN
  for (std::size_t i = 0; i < array->size(); ++i) {
    const auto& table = *array->get(i)->as_table();
    const std::string prefix = "listen[" + std::to_string(i) + "].";
    read.unknown_keys(table, "listen", prefix);
    const toml::node* name_node = table.get("name");
    std::optional<std::string> name = "fd" + std::to_string(3 + i);
    if (name_node != nullptr) {
      name = read.string(*name_node, prefix + "name", name_expected);
      if (name && !is_valid_name(*name)) {
        report.bad_value(*name_node, prefix + "name", name_expected);
      }
    }
    name_nodes.push_back(name && name_node != nullptr ? name_node : nullptr);
    const bool valid_name = name && is_valid_name(*name);
    const auto duplicate = std::find(names.begin(), names.end(), name.value_or(""));
    const bool unique = duplicate == names.end();
    if (valid_name && !unique) {
      // Reported at a name the operator wrote, naming the other listener that has it. One of the
      // two was written: default names (fd3, fd4, …) differ from each other.
      const auto j = static_cast<std::size_t>(duplicate - names.begin());
      const bool here = name_nodes[i] != nullptr;
      const toml::node& where = here ? *name_nodes[i] : *name_nodes[j];
      report.at(where.source(), "listen[" + std::to_string(here ? i : j) + "].name",
                "expected a name unique among listeners, found " + report.found(where, false) + " (listen[" +
                    std::to_string(here ? j : i) + "] has it too)");
    }
    names.push_back(name.value_or(""));
    auto listener = listener_settings(table, prefix, read, paths);
    if (listener && valid_name && unique) {
      listener->name = *name;
      out.listeners.push_back(std::move(*listener));
    } else if (name) {
      // Placeholders naming a broken listener are not reported a second time.
      out.broken_names.push_back(*name);
    }
  }
  return out;
}

}  // namespace clusterd::config_detail
