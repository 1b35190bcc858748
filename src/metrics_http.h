// What the metrics endpoint answers to a request head: GET or HEAD /metrics → the Prometheus text;
// another path 404, another method 405, a rejected head its status (400, 431, 505), a client too
// slow to send its head 408. Every reply is whole, with Content-Length and Connection: close.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "http_request.h"

namespace clusterd {

// The media type of the Prometheus text exposition format 0.0.4.
inline constexpr std::string_view metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";

// The reply to `head`. `metrics` is called only for GET and HEAD /metrics (a query string is
// ignored), so the text is read fresh for each scrape and never for a refused request.
std::string metrics_http_reply(const HttpRequestHead& head, const std::function<std::string()>& metrics);

// A reply with `status` and `reason` as its text/plain body (the 4xx and 5xx ones).
std::string http_error_reply(int status, std::string_view reason);

}  // namespace clusterd
