// `clusterd logs`: asks for the workers' recent lines, prints them as "[SLOT PID] text", and with
// -f keeps printing the lines clusterd streams on the same connection.
#include <chrono>
#include <ostream>

#include "control_client.h"
#include "control_protocol.h"
#include "printable.h"
#include "worker_output.h"

namespace clusterd {
namespace {

constexpr int exit_ok = 0;
constexpr int exit_refused = 1;
constexpr int exit_usage = 2;
constexpr int reply_seconds = 30;

// A worker's text is whatever bytes it wrote: terminal controls are shown escaped, tabs kept.
std::string shown_text(std::string_view text) {
  std::string shown;
  for (std::size_t at = 0;;) {
    const std::size_t tab = text.find('\t', at);
    shown += printable(text.substr(at, tab == std::string_view::npos ? std::string_view::npos : tab - at));
    if (tab == std::string_view::npos) {
      return shown;
    }
    shown += '\t';
    at = tab + 1;
  }
}

// One record as a person reads it: "[SLOT PID] text", after the time with -t. A field of the
// wrong type (not from a clusterd) shows as "?".
std::string rendered(const nlohmann::ordered_json& line, bool timestamps) {
  const auto number = [&line](const char* key) {
    return line.contains(key) && line[key].is_number_integer() ? std::to_string(line[key].get<long long>())
                                                               : std::string("?");
  };
  std::string text;
  if (timestamps && line.contains("time") && line["time"].is_number()) {
    const auto since_epoch = std::chrono::duration<double>(line["time"].get<double>());
    text += line_timestamp(std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(since_epoch)));
  }
  text += "[" + number("slot") + " " + number("pid") + "] ";
  if (line.contains("text") && line["text"].is_string()) {
    text += shown_text(line["text"].get_ref<const std::string&>());
  }
  return text + "\n";
}

}  // namespace

int show_logs(const CliOptions& options, const std::string& path, std::ostream& out, std::ostream& err) {
  const LogsRequest request{options.logs_slot, options.logs_lines, options.follow};
  auto sent = send_request(path, request);
  if (!sent) {
    err << "clusterd: " << printable(sent.error()) << '\n';
    return exit_usage;
  }
  const Fd fd = std::move(*sent);
  set_receive_timeout(fd.get(), reply_seconds);
  std::string buffer;
  std::string error;
  const auto failed = [&](const std::string& why) {
    out.flush();
    err << "clusterd: control socket " << printable(path) << ": " << why << '\n';
    return exit_refused;
  };
  const auto first = read_reply_line(fd.get(), buffer, error);
  if (!first) {
    return failed(error);
  }
  const auto reply = parse_reply(*first);
  if (!reply) {
    return failed(reply.error());
  }
  if ((*reply)["ok"] != true) {
    err << "clusterd: " << printable((*reply)["error"].get<std::string>()) << '\n';
    return exit_refused;
  }
  if (options.json) {
    out << printable_json(*reply) << '\n';
  } else if (reply->contains("lines") && (*reply)["lines"].is_array()) {
    for (const auto& line : (*reply)["lines"]) {
      out << rendered(line, options.timestamps);
    }
  }
  out.flush();
  if (!options.follow) {
    return exit_ok;
  }
  set_receive_timeout(fd.get(), 0);  // a quiet worker may write nothing for hours
  for (;;) {
    const auto next = read_reply_line(fd.get(), buffer, error);
    if (!next) {
      if (error != "the connection closed without a reply") {
        return failed(error);
      }
      return failed(buffer.empty() ? "clusterd closed the log stream without saying why"
                                   : "clusterd closed the log stream in the middle of a record");
    }
    nlohmann::ordered_json record = nlohmann::ordered_json::parse(*next, nullptr, false);
    if (!record.is_object()) {
      return failed("not a log record: " + printable(next->substr(0, 200)));
    }
    if (record.contains("ok")) {  // the end of the stream: clusterd stopped, or cut us off
      if (options.json) {
        out << printable_json(record) << '\n';
      }
      out.flush();
      if (record["ok"] == true) {
        return exit_ok;
      }
      const bool said = record.contains("error") && record["error"].is_string();
      err << "clusterd: " << printable(said ? record["error"].get<std::string>() : "the log stream ended") << '\n';
      return exit_refused;
    }
    if (options.json) {
      out << printable_json(record) << '\n';
    } else {
      out << rendered(record, options.timestamps);
    }
    // Flushed whenever nothing more is waiting: lines show at once, a burst in one write.
    if (buffer.find('\n') == std::string::npos) {
      out.flush();
    }
  }
}

}  // namespace clusterd
