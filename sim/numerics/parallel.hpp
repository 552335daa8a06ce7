// Splits independent work over the machine's cores. Each index is computed by exactly one thread
// with the same arithmetic as a serial run, so results do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace tpsim::numerics {

inline int worker_count() {
  static const int n = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  return n;
}

// fn(begin, end) over [0, n) in contiguous blocks whose boundaries are multiples of `align`;
// serial when `work` (a rough operation count) is too small to pay for threads.
template <class Fn>
void parallel_for(int64_t n, Fn fn, int64_t align = 1, double work = 1e9) {
  const int workers = work < 4e6 ? 1 : static_cast<int>(std::min<int64_t>(worker_count(), (n + align - 1) / align));
  if (workers <= 1) {
    fn(int64_t(0), n);
    return;
  }
  const int64_t blocks = (n + align - 1) / align;
  std::vector<std::thread> threads;
  int64_t begin = 0;
  for (int w = 0; w < workers; ++w) {
    const int64_t end = w == workers - 1 ? n : std::min(n, (blocks * (w + 1) / workers) * align);
    if (end > begin) threads.emplace_back(fn, begin, end);
    begin = end;
  }
  for (auto& t : threads) t.join();
}

}  // namespace tpsim::numerics
