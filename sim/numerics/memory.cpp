#include "numerics/memory.hpp"

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace tpsim::numerics {

void advise_huge_pages(float* data, int64_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t huge = uintptr_t(2) << 20;
  if (bytes < int64_t(4 * huge)) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + huge - 1) & ~(huge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + uintptr_t(bytes)) & ~(huge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data, (void)bytes;
#endif
}

Mat large_matrix(int64_t rows, int64_t cols) {
  Mat m(rows, cols);   // Eigen leaves new storage untouched
  advise_huge_pages(m.data(), int64_t(m.size() * sizeof(float)));
  return m;
}

}  // namespace tpsim::numerics
