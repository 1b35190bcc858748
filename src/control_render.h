// Control replies written for people: the `status` table and one line for the other requests
// (what the client subcommands print without --json).
//
// Pure: takes the parsed reply, returns text. A field the reply lacks, or of an unexpected type
// (an older or newer daemon), is shown as "-" rather than failing.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "control_protocol.h"

namespace clusterd {

// The cells of status replies, as the `status` table and `clusterd top` show them. A missing
// field, or one of an unexpected type, is "-" (text) or nullopt (number).
std::string text_field(const nlohmann::ordered_json& object, std::string_view key);
std::optional<double> number_field(const nlohmann::ordered_json& object, std::string_view key);
// 0.4 → "0.4%", 37.2 → "37%": a tenth matters only near idle.
std::string percent_text(std::optional<double> percent);
// Memory as `ps` and pm2 show it: 812K, 23.4M, 1.2G (powers of 1024).
std::string bytes_text(std::optional<double> bytes);
// A worker entry's memory: its tree's PSS (shared pages split) where clusterd could read it, else RSS.
std::optional<double> memory_bytes(const nlohmann::ordered_json& worker);

// `shop: pid 4100, generation 2, 2/2 workers ready, reloading to generation 3 (clusterd 0.1.0)`:
// the status table's first line, without '\n'.
std::string instance_line(const nlohmann::ordered_json& reply);

// The status table: its heading row, then one row per worker entry (a STATUS column when any
// worker has a STATUS=).
std::vector<std::vector<std::string>> status_rows(const nlohmann::ordered_json& reply);

// Rows as lines: columns padded to their widest cell, two spaces apart; the last one is not
// padded, so no line ends in blanks. Without '\n'.
std::vector<std::string> table_lines(const std::vector<std::vector<std::string>>& rows);

// A header naming the instance, its pid, generation and readiness, its listeners and config file,
// then one aligned row per worker entry, like `pm2 ls`:
//
//   shop: pid 4100, generation 2, 2/2 workers ready (clusterd 0.1.0)
//     listening: http 127.0.0.1:8000 (fd 3)
//     config:    /etc/clusterd/shop.toml
//
//   SLOT  PID   GEN  STATE           UPTIME  CPU   MEM    RESTARTS  LAST EXIT
//   0     4121  2    ready           3m12s   1.2%  23.4M  0         -
//   1     -     -    backoff (1.6s)  -       -     -      3         code 1
//
// CPU is the worker's process tree's share of one core since the previous request, MEM its PSS
// (or RSS where PSS is unreadable).
//
// A STATUS column (the workers' own STATUS=) is added when any worker has one. Ends with '\n'.
std::string render_status(const nlohmann::ordered_json& reply);

// The text for an `ok: true` reply to `request`, ending with '\n': the status table, `reload
// finished: generation 3`, `workers wanted: 3`, `restarting slot 2`, or for stop "" (the client
// says when the instance is gone).
std::string render_reply(const Request& request, const nlohmann::ordered_json& reply);

// One control socket `clusterd ls` found: its status reply, or why there is none.
struct ListedInstance {
  std::string socket;
  std::optional<nlohmann::ordered_json> status;
  std::string error;
};

// `clusterd ls`, one line per instance, like `pm2 ls`:
//
//   NAME  PID   GEN  WORKERS  STATE      SOCKET
//   shop  4100  2    4/4      running    /run/clusterd/shop.sock
//   api   -     -    -        no answer  /run/clusterd/api.sock (connection refused)
std::string render_list(const std::vector<ListedInstance>& instances);

// `clusterd ls --json`: [{"socket":…,"ok":true,"name":…,"pid":…,"generation":…,"workers_ready":…,
// "workers_wanted":…,"reloading_to":…,"stopping":…}, {"socket":…,"ok":false,"error":…}].
nlohmann::ordered_json list_json(const std::vector<ListedInstance>& instances);

}  // namespace clusterd
