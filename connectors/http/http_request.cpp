#include "connectors/http/http_request.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

namespace sextant::http {

namespace {

bool Fail(HttpError* error, int status, std::string message) {
  error->status = status;
  error->message = std::move(message);
  return false;
}

// RFC 9110 tchar.
bool IsTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Comma-separated list members, trimmed and lowercased.
std::vector<std::string> ListMembers(std::string_view value) {
  std::vector<std::string> out;
  while (!value.empty()) {
    const size_t comma = value.find(',');
    const std::string_view item = Trim(value.substr(0, comma));
    if (!item.empty()) out.push_back(Lower(item));
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace

const std::string* RequestHead::Find(std::string_view lowercase_name) const {
  for (const HttpHeaderField& f : fields) {
    if (f.name == lowercase_name) return &f.value;
  }
  return nullptr;
}

size_t FindHeadEnd(std::string_view buffer, const HeadLimits& limits, HttpError* error) {
  const size_t end = buffer.find("\r\n\r\n");
  if (end != std::string_view::npos && end + 4 <= limits.max_bytes) return end + 4;
  if (end != std::string_view::npos || buffer.size() > limits.max_bytes) {
    Fail(error, 431,
         "the request head is larger than " + std::to_string(limits.max_bytes) + " bytes");
  }
  return 0;
}

bool ParseRequestHead(std::string_view head, const HeadLimits& limits, RequestHead* out,
                      HttpError* error) {
  *out = RequestHead();
  if (head.size() > limits.max_bytes) {
    return Fail(error, 431,
                "the request head is larger than " + std::to_string(limits.max_bytes) + " bytes");
  }
  // A client may send empty lines before a request (RFC 9112 2.2); they are skipped.
  while (head.substr(0, 2) == "\r\n") head.remove_prefix(2);
  if (head.size() < 4 || head.substr(head.size() - 4) != "\r\n\r\n") {
    return Fail(error, 400, "the request head does not end with an empty line");
  }
  head.remove_suffix(2);  // each line now ends with CRLF

  // Request line.
  size_t eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  head.remove_prefix(eol + 2);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
      line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Fail(error, 400, "malformed request line (expected: METHOD TARGET HTTP/1.1)");
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (method.empty() || method.size() > 16 ||
      !std::all_of(method.begin(), method.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return Fail(error, 400, "malformed request method");
  }
  if (target.size() > limits.max_target) {
    return Fail(
        error, 414,
        "the request target is longer than " + std::to_string(limits.max_target) + " bytes");
  }
  if (target.empty() || target.front() != '/') {
    return Fail(error, 400, "the request target must be a path starting with '/'");
  }
  for (unsigned char c : target) {
    if (c <= 0x20 || c >= 0x7f) {
      return Fail(error, 400, "the request target holds a byte that is not visible ASCII");
    }
  }
  if (version == "HTTP/1.1") {
    out->minor_version = 1;
  } else if (version == "HTTP/1.0") {
    out->minor_version = 0;
  } else if (version.substr(0, 5) == "HTTP/") {
    return Fail(error, 505, "only HTTP/1.0 and HTTP/1.1 are served");
  } else {
    return Fail(error, 400, "malformed HTTP version in the request line");
  }
  out->method = std::string(method);
  out->target = std::string(target);
  out->path = std::string(target.substr(0, target.find('?')));

  // Header fields.
  bool have_length = false;
  bool close = false;
  bool keep_alive_token = false;
  while (!head.empty()) {
    eol = head.find("\r\n");
    const std::string_view field = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    if (out->fields.size() >= limits.max_fields) {
      return Fail(error, 431,
                  "the request has more than " + std::to_string(limits.max_fields) + " fields");
    }
    if (!field.empty() && (field.front() == ' ' || field.front() == '\t')) {
      return Fail(error, 400, "obsolete line folding in a header field is not accepted");
    }
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Fail(error, 400, "malformed header field (expected name: value)");
    }
    const std::string_view name = field.substr(0, colon);
    for (unsigned char c : name) {
      if (!IsTokenChar(c)) {
        return Fail(error, 400,
                    "malformed header field name '" + std::string(name.substr(0, 64)) + "'");
      }
    }
    const std::string_view value = Trim(field.substr(colon + 1));
    for (unsigned char c : value) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        return Fail(error, 400, "header field '" + Lower(name) + "' holds a control character");
      }
    }
    HttpHeaderField f{Lower(name), std::string(value)};
    if (f.name == "content-length") {
      if (value.empty() || value.size() > 15 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return Fail(error, 400, "Content-Length is not a decimal number of bytes");
      }
      const uint64_t n = std::stoull(std::string(value));
      if (have_length && n != out->content_length) {
        return Fail(error, 400, "two Content-Length fields disagree");
      }
      have_length = true;
      out->content_length = n;
    } else if (f.name == "transfer-encoding") {
      const std::vector<std::string> codings = ListMembers(value);
      if (codings.size() == 1 && codings[0] == "chunked") {
        return Fail(error, 411,
                    "chunked request bodies are not accepted: send the body with Content-Length");
      }
      return Fail(error, 501, "Transfer-Encoding is not accepted on requests");
    } else if (f.name == "connection") {
      for (const std::string& token : ListMembers(value)) {
        if (token == "close") close = true;
        if (token == "keep-alive") keep_alive_token = true;
      }
    } else if (f.name == "expect") {
      if (Lower(value) != "100-continue") {
        return Fail(error, 417, "the only expectation served is 100-continue");
      }
      out->expect_continue = true;
    } else if (f.name == "content-encoding") {
      const std::vector<std::string> codings = ListMembers(value);
      if (codings.size() > 1) {
        return Fail(error, 415, "one content coding at most (gzip or deflate)");
      }
      out->content_encoding = codings.empty() ? "" : codings[0];
    }
    out->fields.push_back(std::move(f));
  }
  out->keep_alive = out->minor_version == 1 ? !close : false;
  (void)keep_alive_token;  // HTTP/1.0 keep-alive is not offered: the connection closes
  return true;
}

bool DecodeContent(std::string_view coding, std::string body, size_t max_decoded, std::string* out,
                   HttpError* error) {
  if (coding.empty() || coding == "identity") {
    if (body.size() > max_decoded) {
      return Fail(error, 413,
                  "the request body is larger than " + std::to_string(max_decoded) + " bytes");
    }
    *out = std::move(body);
    return true;
  }
  int window_bits = 0;
  if (coding == "gzip" || coding == "x-gzip") {
    window_bits = 15 + 16;
  } else if (coding == "deflate") {
    // RFC 9110 "deflate" is zlib-wrapped; some clients send raw deflate.
    const bool zlib_header =
        body.size() >= 2 && (static_cast<uint8_t>(body[0]) & 0x0f) == 8 &&
        ((static_cast<uint8_t>(body[0]) << 8) | static_cast<uint8_t>(body[1])) % 31 == 0;
    window_bits = zlib_header ? 15 : -15;
  } else {
    return Fail(error, 415,
                "content coding '" + std::string(coding.substr(0, 32)) +
                    "' is not accepted (gzip, deflate or none)");
  }
  z_stream zs{};
  if (inflateInit2(&zs, window_bits) != Z_OK) {
    return Fail(error, 500, "cannot start inflating the request body");
  }
  std::string decoded;
  constexpr size_t kChunk = 64 * 1024;
  zs.next_in = reinterpret_cast<Bytef*>(body.data());
  zs.avail_in = static_cast<uInt>(body.size());
  int rc = Z_OK;
  bool ok = true;
  while (true) {
    const size_t before = decoded.size();
    // Never more than max_decoded + 1 bytes: one more than allowed proves the body too large.
    const size_t room = std::min(kChunk, max_decoded + 1 - before);
    decoded.resize(before + room);
    zs.next_out = reinterpret_cast<Bytef*>(decoded.data() + before);
    zs.avail_out = static_cast<uInt>(room);
    rc = inflate(&zs, Z_NO_FLUSH);
    decoded.resize(before + room - zs.avail_out);
    if (decoded.size() > max_decoded) {
      ok = Fail(error, 413,
                "the request body inflates to more than " + std::to_string(max_decoded) + " bytes");
      break;
    }
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      if (window_bits != 15 + 16) {
        ok = Fail(error, 400, "bytes follow the end of the deflate stream");
        break;
      }
      // Another gzip member follows.
      if (inflateReset(&zs) != Z_OK) {
        ok = Fail(error, 400, "corrupt gzip body");
        break;
      }
      continue;
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
      ok = Fail(error, 400, "the " + std::string(coding) + " body is truncated");
      break;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      ok = Fail(error, 400,
                "corrupt " + std::string(coding) + " body" +
                    (zs.msg != nullptr ? std::string(": ") + zs.msg : std::string()));
      break;
    }
  }
  inflateEnd(&zs);
  if (!ok) return false;
  *out = std::move(decoded);
  return true;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 499:
      return "Client Closed Request";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace sextant::http
