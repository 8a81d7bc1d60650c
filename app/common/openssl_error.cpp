#include "app/common/openssl_error.h"

#include <openssl/err.h>

namespace sextant {

std::string OpenSslErrorText(std::string_view what) {
  std::string msg(what);
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    msg += ": ";
    msg += buf;
  }
  return msg;
}

}  // namespace sextant
