// What `clusterd top` shows: the instance, its totals and the status table, cut to the window,
// with a status line and a footer.
//
// Pure: takes the parsed status reply and the window's size, returns lines; the terminal I/O is
// top_terminal.h's. A line is cut by code points, each taken as one column: the text is
// printable() already, and wide characters (CJK in a worker's STATUS=) may cut a line short of
// the edge or let it wrap, which the next redraw repairs.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace clusterd {

struct WindowSize {
  int rows = 24;
  int columns = 80;
};

// The whole pool's cost: the sums over the worker entries that have a value (nullopt when none
// has); memory is each worker's PSS, else RSS (memory_bytes in control_render.h).
struct PoolTotals {
  std::optional<double> cpu_percent;
  std::optional<double> memory_bytes;
  int processes = 0;
};
PoolTotals pool_totals(const nlohmann::ordered_json& reply);

// `workers 2/3 ready, CPU 12%, memory 46.8M, 5 processes; reload: none` (or `reload: to
// generation 4`, or `stopping`).
std::string totals_line(const nlohmann::ordered_json& reply);

// `text` cut to `columns` code points.
std::string fit_to_width(std::string_view text, int columns);

// The screen, at most `size.rows` lines of at most `size.columns` columns each:
//
//   shop: pid 4100, generation 2, 2/2 workers ready (clusterd 0.1.0)
//   workers 2/2 ready, CPU 1.2%, memory 46.8M, 2 processes; reload: none
//
//   SLOT  PID   GEN  STATE  UPTIME  CPU   MEM    RESTARTS  LAST EXIT
//   0     4121  2    ready  3m12s   1.2%  23.4M  0         -
//   …
//   <message: what the last action did, or what top waits for>
//   <footer: the keys, or the restart prompt while it is open>
//
// The message and the footer keep the last two rows; worker rows that do not fit above them are
// replaced by one line saying how many more there are. Without a reply yet (`status` nullopt),
// only the message and the footer.
std::vector<std::string> top_screen(const std::optional<nlohmann::ordered_json>& status, std::string_view message,
                                    std::string_view footer, WindowSize size);

// The footer when no prompt is open.
inline constexpr std::string_view top_keys_help = "q quit  r reload  + one more  - one fewer  R restart a slot";

}  // namespace clusterd
