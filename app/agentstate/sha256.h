// SHA-256 as lowercase hex, through OpenSSL's EVP API.
// Thread-safety: pure function; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace sextant::agent {

std::string Sha256Hex(std::string_view data);

}  // namespace sextant::agent
