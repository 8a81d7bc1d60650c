// The request side of HTTP as the listener reads it: heads that are refused (and with which
// status), heads that are taken, and content codings inflated within their limit.
#include "connectors/http/http_request.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>

namespace sextant::http {
namespace {

std::string Gzip(const std::string& data, int window_bits = 15 + 16) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, window_bits, 9, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, data.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

struct Refusal {
  std::string head;
  int status;
  std::string says;
};

TEST(HttpRequestHead, RefusedHeadsNameWhatIsWrong) {
  const std::vector<Refusal> cases = {
      {"GET /\r\n\r\n", 400, "request line"},
      {"GET  / HTTP/1.1\r\n\r\n", 400, "request line"},
      {"get / HTTP/1.1\r\n\r\n", 400, "method"},
      {"GET http://evil/ HTTP/1.1\r\n\r\n", 400, "starting with '/'"},
      {"GET /a\x01 HTTP/1.1\r\n\r\n", 400, "visible ASCII"},
      {"GET / HTTP/2.0\r\n\r\n", 505, "HTTP/1.0 and HTTP/1.1"},
      {"GET / HTTX/1.1\r\n\r\n", 400, "version"},
      {"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, "name: value"},
      {"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", 400, "field name"},
      {"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400, "folding"},
      {"GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", 400, "control character"},
      {"POST / HTTP/1.1\r\nContent-Length: 12a\r\n\r\n", 400, "decimal"},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "decimal"},
      {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, "decimal"},
      {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, "disagree"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411, "Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
       "Transfer-Encoding"},
      {"POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417, "100-continue"},
      {"POST / HTTP/1.1\r\nContent-Encoding: gzip, br\r\n\r\n", 415, "one content coding"},
      {"GET / HTTP/1.1\r\n", 400, "empty line"},
  };
  for (const Refusal& c : cases) {
    RequestHead head;
    HttpError error;
    EXPECT_FALSE(ParseRequestHead(c.head, {}, &head, &error)) << c.head;
    EXPECT_EQ(error.status, c.status) << c.head;
    EXPECT_NE(error.message.find(c.says), std::string::npos) << c.head << " -> " << error.message;
  }
}

TEST(HttpRequestHead, LimitsOnSizeFieldsAndTarget) {
  HeadLimits limits;
  limits.max_bytes = 200;
  limits.max_fields = 3;
  limits.max_target = 20;
  HttpError error;
  EXPECT_EQ(FindHeadEnd("GET / HTTP/1.1\r\n" + std::string(300, 'a'), limits, &error), 0u);
  EXPECT_EQ(error.status, 431);
  error = {};
  EXPECT_EQ(FindHeadEnd("GET / HTTP/1.1\r\nA: b", limits, &error), 0u);
  EXPECT_EQ(error.status, 400);  // untouched: more bytes are needed
  EXPECT_TRUE(error.message.empty());
  EXPECT_EQ(FindHeadEnd("GET / HTTP/1.1\r\n\r\nextra", limits, &error), 18u);

  RequestHead head;
  EXPECT_FALSE(ParseRequestHead("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", limits,
                                &head, &error));
  EXPECT_EQ(error.status, 431);
  EXPECT_FALSE(ParseRequestHead("GET /" + std::string(30, 'x') + " HTTP/1.1\r\n\r\n", limits, &head,
                                &error));
  EXPECT_EQ(error.status, 414);
}

TEST(HttpRequestHead, AcceptedHeadsAreReadAsSent) {
  RequestHead head;
  HttpError error;
  ASSERT_TRUE(ParseRequestHead(
      "\r\nPOST /v1/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n"
      "content-length: 12\r\nAuthorization:  Bearer k \r\nConnection: Keep-Alive, Close\r\n"
      "Expect: 100-Continue\r\nContent-Encoding: GZIP\r\n\r\n",
      {}, &head, &error))
      << error.message;
  EXPECT_EQ(head.method, "POST");
  EXPECT_EQ(head.path, "/v1/completions");
  EXPECT_EQ(head.target, "/v1/completions?x=1");
  EXPECT_EQ(head.content_length, 12u);
  EXPECT_FALSE(head.keep_alive);
  EXPECT_TRUE(head.expect_continue);
  EXPECT_EQ(head.content_encoding, "gzip");
  ASSERT_NE(head.Find("authorization"), nullptr);
  EXPECT_EQ(*head.Find("authorization"), "Bearer k");

  ASSERT_TRUE(ParseRequestHead("GET /healthz HTTP/1.0\r\n\r\n", {}, &head, &error));
  EXPECT_EQ(head.minor_version, 0);
  EXPECT_FALSE(head.keep_alive);  // HTTP/1.0 connections close after one answer
  ASSERT_TRUE(ParseRequestHead("GET /healthz HTTP/1.1\r\n\r\n", {}, &head, &error));
  EXPECT_TRUE(head.keep_alive);
  EXPECT_EQ(head.content_length, 0u);
}

TEST(HttpContent, IdentityGzipAndDeflateWithinTheLimit) {
  const std::string json = R"({"model":"m","prompt":")" + std::string(5000, 'a') + "\"}";
  std::string out;
  HttpError error;
  ASSERT_TRUE(DecodeContent("", json, 1 << 20, &out, &error));
  EXPECT_EQ(out, json);
  ASSERT_TRUE(DecodeContent("gzip", Gzip(json), 1 << 20, &out, &error)) << error.message;
  EXPECT_EQ(out, json);
  ASSERT_TRUE(DecodeContent("deflate", Gzip(json, 15), 1 << 20, &out, &error)) << error.message;
  EXPECT_EQ(out, json);
  ASSERT_TRUE(DecodeContent("deflate", Gzip(json, -15), 1 << 20, &out, &error))
      << error.message;  // raw deflate, as some clients send it
  EXPECT_EQ(out, json);
  // Two gzip members are one body.
  ASSERT_TRUE(DecodeContent("gzip", Gzip("ab") + Gzip("cd"), 1 << 20, &out, &error));
  EXPECT_EQ(out, "abcd");
}

TEST(HttpContent, ABombStopsAtTheLimitAndBrokenStreamsAre400) {
  // 16 MiB of zeros compress to about 16 KiB.
  const std::string bomb = Gzip(std::string(16 << 20, '\0'));
  ASSERT_LT(bomb.size(), 32u << 10);
  std::string out;
  HttpError error;
  EXPECT_FALSE(DecodeContent("gzip", bomb, 4 << 20, &out, &error));
  EXPECT_EQ(error.status, 413);
  EXPECT_NE(error.message.find("4194304"), std::string::npos) << error.message;
  EXPECT_TRUE(out.empty());

  const std::string good = Gzip("hello");
  EXPECT_FALSE(DecodeContent("gzip", good.substr(0, good.size() - 5), 1 << 20, &out, &error));
  EXPECT_EQ(error.status, 400);
  EXPECT_NE(error.message.find("truncated"), std::string::npos) << error.message;
  EXPECT_FALSE(DecodeContent("gzip", "not gzip at all", 1 << 20, &out, &error));
  EXPECT_EQ(error.status, 400);
  EXPECT_FALSE(DecodeContent("deflate", Gzip("x", 15) + "junk", 1 << 20, &out, &error));
  EXPECT_EQ(error.status, 400);
  EXPECT_FALSE(DecodeContent("br", "x", 1 << 20, &out, &error));
  EXPECT_EQ(error.status, 415);
  EXPECT_FALSE(DecodeContent("", std::string(10, 'a'), 5, &out, &error));
  EXPECT_EQ(error.status, 413);
}

}  // namespace
}  // namespace sextant::http
