#include "numerics/memory.hpp"

namespace tpsim::numerics {

Mat large_matrix(int64_t rows, int64_t cols) {
  Mat m(rows, cols);   // Eigen leaves new storage untouched
  advise_huge_pages(m.data(), int64_t(m.size() * sizeof(float)));
  return m;
}

}  // namespace tpsim::numerics
