// AWS Signature Version 4 (header form), written against AWS's published test suite
// (tests/connectors/cloud/aws/testdata/aws-sig-v4-test-suite, its source named there).
//
// Signing a request takes four steps, each a function here so each can be checked against the
// suite's intermediate files:
//   1. the canonical request: method, canonical URI (the path with dot segments and empty
//      segments removed unless `normalize_path` is false, as for S3, then each segment
//      URI-encoded; a path that arrives percent-encoded is encoded again, as AWS wants for
//      every service but S3), canonical query (keys and values URI-encoded, sorted by key then
//      value), canonical headers (names lowercased and sorted; values trimmed, inner runs of
//      spaces collapsed, repeated headers joined with ',' in order), signed headers, and the
//      payload's hex SHA-256;
//   2. the string to sign: "AWS4-HMAC-SHA256", the time, the scope
//      (date/region/service/aws4_request) and the canonical request's hex SHA-256;
//   3. the signing key: HMAC-SHA256 chained over date, region, service and "aws4_request",
//      starting from "AWS4" + secret key;
//   4. the signature (hex HMAC of the string to sign) and the Authorization header.
// Every header handed to SignV4 is signed; the caller decides which (host, x-amz-date and
// x-amz-security-token at least).
//
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sextant::cloud::aws {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term keys
  std::optional<std::chrono::system_clock::time_point> expiration;
  std::string source;  // "environment", "profile default (~/.aws/credentials)", ...

  bool Empty() const { return access_key_id.empty() || secret_access_key.empty(); }
};

using KeyValues = std::vector<std::pair<std::string, std::string>>;

struct CanonicalInput {
  std::string method;
  std::string path = "/";  // as sent on the wire (may hold %XX escapes)
  KeyValues query;         // decoded names and values
  KeyValues headers;       // as sent; every one is signed
  std::string_view payload;
};

struct SigningScope {
  std::string region;
  std::string service;
  std::chrono::system_clock::time_point time;
};

struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-date"
  std::string signature;       // hex
  std::string authorization;   // the Authorization header's value
};

// RFC 3986 unreserved characters (A-Z a-z 0-9 - _ . ~) stay, every other byte becomes %XX
// (upper-case hex); '/' stays when encode_slash is false.
std::string UriEncode(std::string_view s, bool encode_slash = true);

// Removes "." segments, resolves ".." and collapses empty segments; keeps a trailing slash.
std::string NormalizePath(std::string_view path);

std::string CanonicalUri(std::string_view path, bool normalize_path);
std::string CanonicalQuery(const KeyValues& query);
// "20150830T123600Z".
std::string AmzDate(std::chrono::system_clock::time_point t);

std::string Sha256Hex(std::string_view data);
// Raw 32-byte HMAC-SHA256.
std::string HmacSha256(std::string_view key, std::string_view data);
std::string DeriveSigningKey(std::string_view secret, std::string_view date8,
                             std::string_view region, std::string_view service);

Signature SignV4(const CanonicalInput& input, const Credentials& credentials,
                 const SigningScope& scope, bool normalize_path = true);

}  // namespace sextant::cloud::aws
