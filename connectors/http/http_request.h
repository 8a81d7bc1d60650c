// The request side of HTTP/1.1 as the agent's listener reads it: the head (request line and
// header fields) and a body's content coding. Strict and bounded, without I/O, so a fuzzer
// drives these functions directly (tests/fuzz).
//
// Refused, each with the status the listener answers and a message naming what is wrong:
//   - a request line or field that is not "METHOD SP TARGET SP HTTP/1.x" / "name: value" with
//     CRLF line ends (400), obsolete line folding (400), a target that does not start with "/"
//     (400), a head over HeadLimits (431) or a target over max_target (414);
//   - Transfer-Encoding (chunked request bodies are not taken: 411; others 501), a
//     Content-Length that is not a number or differs between fields (400): what could let a
//     proxy in front and this listener disagree about where a request ends;
//   - content codings other than gzip and deflate (415), a body that inflates past its limit
//     (413) or is corrupt (400).
//
// Thread-safety: free functions of their arguments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sextant::http {

struct HttpError {
  int status = 400;
  std::string message;
};

struct HttpHeaderField {
  std::string name;  // lowercase
  std::string value;
};

struct HeadLimits {
  size_t max_bytes = 16384;  // the whole head, blank line included
  size_t max_fields = 100;
  size_t max_target = 8192;
};

struct RequestHead {
  std::string method;
  std::string target;  // as sent
  std::string path;    // target without the query string
  int minor_version = 1;
  std::vector<HttpHeaderField> fields;
  uint64_t content_length = 0;   // 0 when absent
  bool keep_alive = true;        // HTTP/1.1 unless "Connection: close"; HTTP/1.0 never
  bool expect_continue = false;  // "Expect: 100-continue"
  std::string content_encoding;  // lowercase; "" or "identity" = none

  // The value of the first field named `lowercase_name`, or nullptr.
  const std::string* Find(std::string_view lowercase_name) const;
};

// The length of the head at the start of `buffer` (through the blank line that ends it), or 0
// when it is not complete yet. Sets *error (431) when more than limits.max_bytes arrive without
// a complete head.
size_t FindHeadEnd(std::string_view buffer, const HeadLimits& limits, HttpError* error);

// Parses a complete head (as found by FindHeadEnd). False with *error filled when refused.
bool ParseRequestHead(std::string_view head, const HeadLimits& limits, RequestHead* out,
                      HttpError* error);

// Removes the content coding of a request body: "" and "identity" leave it as it is; "gzip"
// and "deflate" (zlib or raw) inflate it, refusing (413) once the result would pass
// `max_decoded` bytes, so no more than that is ever allocated. False with *error when refused.
bool DecodeContent(std::string_view coding, std::string body, size_t max_decoded, std::string* out,
                   HttpError* error);

// The reason phrase of a status code ("Not Found"); "Unknown" for codes not used here.
std::string_view ReasonPhrase(int status);

}  // namespace sextant::http
