#include "app/common/cloud_identity.h"

#include <cctype>

namespace sextant {

namespace {

bool AllOf(const std::string& s, size_t from, size_t to, int (*pred)(int)) {
  for (size_t i = from; i < to; ++i) {
    if (!pred(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

int IsLowerHex(int c) { return std::isdigit(c) || (c >= 'a' && c <= 'f'); }
int IsHex(int c) { return std::isxdigit(c); }
int IsDigit(int c) { return std::isdigit(c); }
int IsProjectChar(int c) { return std::islower(c) || std::isdigit(c) || c == '-'; }

bool IsUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !IsHex(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

// The value as it may appear in a message: printable ASCII only, at most 64 bytes.
std::string Quote(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 64; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    out += std::isprint(c) ? static_cast<char>(c) : '?';
  }
  return "'" + out + (s.size() > 64 ? "...'" : "'");
}

Status Bad(const std::string& what, const std::string& provider, const std::string& id,
           const char* shape) {
  return Status::InvalidArgument(what + " " + Quote(id) + " is malformed for " + provider +
                                 " (expected " + shape + ")");
}

}  // namespace

Status CheckInstanceId(const std::string& provider, const std::string& id) {
  if (id.empty()) return Status::Ok();
  if (provider == "aws") {
    const bool ok = id.size() >= 2 && id.compare(0, 2, "i-") == 0 &&
                    (id.size() == 10 || id.size() == 19) && AllOf(id, 2, id.size(), IsLowerHex);
    return ok ? Status::Ok() : Bad("instance id", provider, id, "i- and 8 or 17 hex digits");
  }
  if (provider == "gcp") {
    const bool ok = id.size() <= 20 && AllOf(id, 0, id.size(), IsDigit);
    return ok ? Status::Ok() : Bad("instance id", provider, id, "up to 20 decimal digits");
  }
  if (provider == "azure") {
    return IsUuid(id) ? Status::Ok() : Bad("instance id", provider, id, "a vmId UUID");
  }
  return Status::InvalidArgument("instance id " + Quote(id) + " given for provider " +
                                 Quote(provider) + ", which has no instance ids");
}

Status CheckAccountId(const std::string& provider, const std::string& id) {
  if (id.empty()) return Status::Ok();
  if (provider == "aws") {
    const bool ok = id.size() == 12 && AllOf(id, 0, id.size(), IsDigit);
    return ok ? Status::Ok() : Bad("account id", provider, id, "12 decimal digits");
  }
  if (provider == "gcp") {
    const bool ok = id.size() >= 6 && id.size() <= 30 &&
                    std::islower(static_cast<unsigned char>(id[0])) &&
                    AllOf(id, 0, id.size(), IsProjectChar) && id.back() != '-';
    return ok ? Status::Ok()
              : Bad("account id", provider, id, "a project id: 6-30 of a-z, 0-9 and '-'");
  }
  if (provider == "azure") {
    return IsUuid(id) ? Status::Ok() : Bad("account id", provider, id, "a subscription UUID");
  }
  return Status::InvalidArgument("account id " + Quote(id) + " given for provider " +
                                 Quote(provider) + ", which has no account ids");
}

}  // namespace sextant
