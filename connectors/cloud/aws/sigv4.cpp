#include "connectors/cloud/aws/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>

namespace sextant::cloud::aws {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";
constexpr char kHexLower[] = "0123456789abcdef";

std::string HexLower(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHexLower[c >> 4];
    out += kHexLower[c & 15];
  }
  return out;
}

bool Unreserved(unsigned char c) {
  return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~';
}

// Trims both ends and collapses inner runs of spaces and tabs into one space.
std::string TrimAll(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Date8(std::chrono::system_clock::time_point t) { return AmzDate(t).substr(0, 8); }

}  // namespace

std::string UriEncode(std::string_view s, bool encode_slash) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (Unreserved(c) || (c == '/' && !encode_slash)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string NormalizePath(std::string_view path) {
  std::vector<std::string_view> segments;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view seg = path.substr(i, j - i);
    if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segments.push_back(seg);
    }
    i = j + 1;
  }
  std::string out = "/";
  for (size_t k = 0; k < segments.size(); ++k) {
    if (k > 0) out += '/';
    out += segments[k];
  }
  const bool trailing = path.size() > 1 && path.back() == '/' && !segments.empty();
  const bool dot_end = path.size() >= 2 && (path.ends_with("/.") || path.ends_with("/.."));
  if ((trailing || dot_end) && out.back() != '/') out += '/';
  return out;
}

std::string CanonicalUri(std::string_view path, bool normalize_path) {
  const std::string p = normalize_path ? NormalizePath(path) : std::string(path);
  return p.empty() ? "/" : UriEncode(p, /*encode_slash=*/false);
}

std::string CanonicalQuery(const KeyValues& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [k, v] : query) encoded.emplace_back(UriEncode(k), UriEncode(v));
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [k, v] : encoded) {
    if (!out.empty()) out += '&';
    out += k + "=" + v;
  }
  return out;
}

std::string AmzDate(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return HexLower(std::string_view(reinterpret_cast<const char*>(md), sizeof(md)));
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string DeriveSigningKey(std::string_view secret, std::string_view date8,
                             std::string_view region, std::string_view service) {
  std::string k = HmacSha256("AWS4" + std::string(secret), date8);
  k = HmacSha256(k, region);
  k = HmacSha256(k, service);
  return HmacSha256(k, "aws4_request");
}

Signature SignV4(const CanonicalInput& input, const Credentials& credentials,
                 const SigningScope& scope, bool normalize_path) {
  // Headers: lowercased names, sorted; repeated names keep their order, joined with ','.
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : input.headers) {
    const std::string key = Lower(TrimAll(name));
    auto [it, inserted] = headers.emplace(key, TrimAll(value));
    if (!inserted) it->second += "," + TrimAll(value);
  }
  std::string canonical_headers, signed_headers;
  for (const auto& [k, v] : headers) {
    canonical_headers += k + ":" + v + "\n";
    if (!signed_headers.empty()) signed_headers += ';';
    signed_headers += k;
  }

  Signature s;
  s.signed_headers = signed_headers;
  s.canonical_request = input.method + "\n" + CanonicalUri(input.path, normalize_path) + "\n" +
                        CanonicalQuery(input.query) + "\n" + canonical_headers + "\n" +
                        signed_headers + "\n" + Sha256Hex(input.payload);
  const std::string date8 = Date8(scope.time);
  const std::string credential_scope =
      date8 + "/" + scope.region + "/" + scope.service + "/aws4_request";
  s.string_to_sign = "AWS4-HMAC-SHA256\n" + AmzDate(scope.time) + "\n" + credential_scope + "\n" +
                     Sha256Hex(s.canonical_request);
  const std::string key =
      DeriveSigningKey(credentials.secret_access_key, date8, scope.region, scope.service);
  s.signature = HexLower(HmacSha256(key, s.string_to_sign));
  s.authorization = "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + "/" +
                    credential_scope + ", SignedHeaders=" + signed_headers +
                    ", Signature=" + s.signature;
  return s;
}

}  // namespace sextant::cloud::aws
