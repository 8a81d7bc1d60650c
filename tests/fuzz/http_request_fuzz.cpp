// The HTTP listener's request side on any bytes: the head parser (refusal statuses are the
// documented ones) and content decoding, which never allocates past its limit.
#include <cstdint>
#include <set>
#include <string>

#include "connectors/http/http_request.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sextant::http;
  static const std::set<int> kStatuses = {400, 411, 414, 415, 417, 431, 501, 505};
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  HeadLimits limits;
  limits.max_bytes = 4096;
  limits.max_fields = 32;
  limits.max_target = 512;
  HttpError error{0, ""};
  const size_t end = FindHeadEnd(bytes, limits, &error);
  if (end > 0) {
    SEXTANT_FUZZ_CHECK(end <= size && end <= limits.max_bytes);
    RequestHead head;
    if (ParseRequestHead(bytes.substr(0, end), limits, &head, &error)) {
      SEXTANT_FUZZ_CHECK(!head.method.empty() && head.path.size() <= head.target.size());
      SEXTANT_FUZZ_CHECK(head.path.front() == '/');
      std::string decoded;
      HttpError decode_error;
      const std::string body(bytes.substr(end));
      if (DecodeContent(head.content_encoding, body, 1 << 16, &decoded, &decode_error)) {
        SEXTANT_FUZZ_CHECK(decoded.size() <= (1 << 16));
      } else {
        SEXTANT_FUZZ_CHECK(decode_error.status == 400 || decode_error.status == 413 ||
                           decode_error.status == 415);
      }
    } else {
      SEXTANT_FUZZ_CHECK(kStatuses.count(error.status) == 1);
    }
  } else if (error.status != 0) {
    SEXTANT_FUZZ_CHECK(error.status == 431);
  }
  // Any bytes as a gzip or deflate body.
  std::string out;
  HttpError decode_error;
  if (size > 0) {
    (void)DecodeContent((data[0] & 1) ? "gzip" : "deflate", std::string(bytes.substr(1)), 1 << 16,
                        &out, &decode_error);
    SEXTANT_FUZZ_CHECK(out.size() <= (1 << 16));
  }
  return 0;
}
