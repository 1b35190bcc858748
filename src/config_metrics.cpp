// Validates the [metrics] section.
#include "config_metrics.h"

#include <string>
#include <string_view>

#include "address.h"
#include "config_format.h"

namespace clusterd::config_detail {

void read_metrics(const toml::table& table, ValueReader& read, MetricsConfig& metrics) {
  const auto* node = table.get("listen");
  if (node == nullptr) {
    return;
  }
  constexpr std::string_view expected = "a TCP address such as \"127.0.0.1:9100\"";
  const auto text = read.string(*node, "metrics.listen", expected);
  if (!text) {
    return;
  }
  Reporter& report = read.report();
  const auto address = parse_address(*text);
  if (!address) {
    report.at(node->source(), "metrics.listen", address.error());
    return;
  }
  if (address->family == AddressFamily::unix_path) {
    report.at(node->source(), "metrics.listen",
              "expected " + std::string(expected) + ", found " + quote(*text) +
                  "; the metrics are served over HTTP on TCP only");
    return;
  }
  if (address->any_dual_stack) {
    // A bare port listens on every address of the machine; for an endpoint that shows pids that
    // should be written out, not implied.
    report.at(node->source(), "metrics.listen",
              "expected HOST:PORT with the host written out, such as \"127.0.0.1:" + std::to_string(address->port) +
                  "\" (or \"0.0.0.0:" + std::to_string(address->port) + "\" for every address), found " +
                  quote(*text));
    return;
  }
  if (address->host == "0.0.0.0" || address->host == "::") {
    report.warn(report.diagnostic_at(
        node->source(), "metrics.listen",
        "listens on every address: whoever can reach port " + std::to_string(address->port) +
            " can read the metrics (the instance's name and version, each worker's pid, slot, memory and CPU); "
            "listen on 127.0.0.1 or a private address, or keep the port behind a firewall"));
  }
  metrics.listen = *address;
}

}  // namespace clusterd::config_detail
