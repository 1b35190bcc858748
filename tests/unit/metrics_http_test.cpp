// The metrics endpoint's replies: routing by path and method, HEAD, and the error replies.
#include "metrics_http.h"

#include <gtest/gtest.h>

namespace clusterd {
namespace {

HttpRequestHead request(std::string method, std::string target) {
  return HttpRequestHead{std::move(method), std::move(target), 1, 0};
}

TEST(MetricsHttp, GetMetricsServesTheTextReadForThisRequest) {
  int reads = 0;
  const auto text = [&reads] {
    ++reads;
    return std::string("up 1\n");
  };
  EXPECT_EQ(metrics_http_reply(request("GET", "/metrics?debug=1"), text),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            "Content-Length: 5\r\nCache-Control: no-store\r\nConnection: close\r\n\r\nup 1\n");
  EXPECT_EQ(reads, 1);
}

TEST(MetricsHttp, HeadHasTheLengthButNoBody) {
  const std::string reply = metrics_http_reply(request("HEAD", "/metrics"), [] { return std::string("up 1\n"); });
  EXPECT_NE(reply.find("Content-Length: 5\r\n"), std::string::npos);
  EXPECT_TRUE(reply.ends_with("\r\n\r\n"));
}

TEST(MetricsHttp, OtherPathsAre404AndOtherMethods405WithoutReadingTheMetrics) {
  const auto never = []() -> std::string {
    ADD_FAILURE() << "metrics read for a refused request";
    return {};
  };
  EXPECT_TRUE(metrics_http_reply(request("GET", "/"), never).starts_with("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_TRUE(metrics_http_reply(request("GET", "/metricsx"), never).starts_with("HTTP/1.1 404 "));
  const std::string post = metrics_http_reply(request("POST", "/metrics"), never);
  EXPECT_TRUE(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_TRUE(post.ends_with("method POST is not allowed; use GET or HEAD\n"));
  EXPECT_TRUE(metrics_http_reply(request("get", "/metrics"), never).starts_with("HTTP/1.1 405 "));
}

TEST(MetricsHttp, ErrorRepliesCarryTheirReason) {
  EXPECT_EQ(http_error_reply(431, "request head longer than 8192 bytes"),
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 36\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
            "request head longer than 8192 bytes\n");
}

}  // namespace
}  // namespace clusterd
