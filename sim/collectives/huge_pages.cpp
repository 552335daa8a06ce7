#include "collectives/huge_pages.hpp"

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace tpsim {

void advise_huge_pages(void* data, int64_t bytes) {
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

void grow_huge(std::vector<float>& v, size_t n) {
  if (v.size() >= n) return;
  if (v.capacity() < n) {
    std::vector<float> bigger;
    bigger.reserve(n);   // allocated, not yet touched
    advise_huge_pages(bigger.data(), int64_t(n * sizeof(float)));
    bigger.assign(v.begin(), v.end());
    v.swap(bigger);
  }
  v.resize(n, 0.0f);
}

}  // namespace tpsim
