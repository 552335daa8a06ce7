#pragma once
#include <string>

#include "tpsim/spec.hpp"

namespace tpsim::cli {
// "file:line:col: key: problem" with the parts that are known.
std::string format_input_error(const InputError& e);
}  // namespace tpsim::cli
