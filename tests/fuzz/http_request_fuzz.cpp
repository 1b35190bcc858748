// Fuzz target `http_request`: any bytes as what a metrics client sent before the head was parsed.
// A complete head is at most the limit long and parses the same without what follows it; a
// rejection is 400, 431 or 505 and says why; every answer is a whole HTTP/1.1 reply.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_require.h"
#include "http_request.h"
#include "metrics_http.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace clusterd;
  constexpr std::size_t max_head = 512;  // small, so the fuzzer reaches the limit
  const std::string_view received(reinterpret_cast<const char*>(data), size);
  const HttpHeadResult result = parse_http_request_head(received, max_head);
  if (const auto* head = std::get_if<HttpRequestHead>(&result)) {
    fuzz::require(head->length <= max_head && head->length <= size, "a head is within the limit and the input");
    const HttpHeadResult alone = parse_http_request_head(received.substr(0, head->length), max_head);
    const auto* again = std::get_if<HttpRequestHead>(&alone);
    fuzz::require(again != nullptr && again->method == head->method && again->target == head->target &&
                      again->minor_version == head->minor_version && again->length == head->length,
                  "a head parses the same without what follows it", std::string(received.substr(0, head->length)));
    const std::string reply = metrics_http_reply(*head, [] { return std::string("up 1\n"); });
    fuzz::require(reply.starts_with("HTTP/1.1 ") && reply.find("\r\n\r\n") != std::string::npos,
                  "the answer is a whole reply", reply);
  } else if (const auto* rejection = std::get_if<HttpRejection>(&result)) {
    fuzz::require(rejection->status == 400 || rejection->status == 431 || rejection->status == 505,
                  "a rejection is 400, 431 or 505", std::to_string(rejection->status));
    fuzz::require(!rejection->reason.empty(), "a rejection says why");
  } else {
    fuzz::require(size <= max_head, "an incomplete head is within the limit");
  }
  return 0;
}
