// Fuzz target `control`: the first byte picks a side. Server side: a request line; one that parses
// is written again by request_line and reads back the same. Client side: a reply line; one that
// parses is rendered as every subcommand would show it (status table, one-line answers, the
// progress line, `ls`), which must never throw whatever the types in it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "control_progress.h"
#include "control_protocol.h"
#include "control_render.h"
#include "fuzz_require.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace clusterd;
  if (size == 0) {
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    const auto request = parse_request(text);
    if (request) {
      const std::string line = request_line(*request);
      const auto again = parse_request(line);
      fuzz::require(again.has_value() && *again == *request, "a request reads back as written", line);
    } else {
      fuzz::require(!request.error().empty(), "a refused request says why");
    }
    return 0;
  }
  const auto reply = parse_reply(text);
  if (!reply) {
    fuzz::require(!reply.error().empty(), "a refused reply says why");
    return 0;
  }
  (void)render_status(*reply);
  for (const Request& request : {Request{StatusRequest{}}, Request{ReloadRequest{}}, Request{ScaleRequest{2}},
                                 Request{ScaleRequest{-1, true}}, Request{RestartRequest{}},
                                 Request{RestartRequest{1}}, Request{StopRequest{}}, Request{MetricsRequest{}}}) {
    (void)render_reply(request, *reply);
  }
  (void)progress_line(ProgressOf::reload, *reply);
  (void)progress_line(ProgressOf::stop, *reply);
  const std::vector<ListedInstance> listed{{"/run/clusterd/a.sock", *reply, ""},
                                           {"/run/clusterd/b.sock", std::nullopt, "connection refused"}};
  (void)render_list(listed);
  (void)list_json(listed).dump();
  return 0;
}
