// Argument checking: every public entry point reports bad input as std::invalid_argument whose
// message names the parameter and the offending value.
#pragma once

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace dqs::detail {

template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  std::ostringstream message;
  message << "dqs: ";
  (message << ... << std::forward<Parts>(parts));
  throw std::invalid_argument(message.str());
}

template <class... Parts>
void require(bool condition, Parts&&... parts) {
  if (!condition) fail(std::forward<Parts>(parts)...);
}

// "name must be finite and > 0, got value"
template <class T>
void require_positive(const char* name, T value) {
  if (!(std::isfinite(static_cast<double>(value)) && value > T(0)))
    fail(name, " must be finite and > 0, got ", value);
}

template <class T>
void require_finite(const char* name, T value) {
  if (!std::isfinite(static_cast<double>(value))) fail(name, " must be finite, got ", value);
}

}  // namespace dqs::detail
