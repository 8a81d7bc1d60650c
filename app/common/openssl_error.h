// The text of OpenSSL's per-thread error queue, for error messages. Thread-safe (the queue is
// per thread).
#pragma once

#include <string>
#include <string_view>

namespace sextant {

// "what: first error: second error ...", oldest first; `what` alone when the queue is empty.
// Empties the queue, so that a later message does not carry these errors.
std::string OpenSslErrorText(std::string_view what);

}  // namespace sextant
