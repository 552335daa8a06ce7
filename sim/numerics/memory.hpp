// Large matrices backed by 2 MiB pages (see collectives/huge_pages.hpp for why).
#pragma once

#include <cstdint>

#include "collectives/huge_pages.hpp"
#include "numerics/dense.hpp"

namespace tpsim::numerics {

// A [rows, cols] matrix whose contents are unspecified (not even zeroed), huge-page advised.
Mat large_matrix(int64_t rows, int64_t cols);

}  // namespace tpsim::numerics
