// Large matrices backed by 2 MiB pages. On the VMs this runs on, first touching a 4 KiB page costs
// ~8 us, so a fresh 90 MB tensor took 22,000 faults (0.2 s) and a 7B layer's verify spent a
// quarter of its time in the kernel; with transparent huge pages ("madvise" mode) it takes 45.
#pragma once

#include <cstdint>

#include "numerics/dense.hpp"

namespace tpsim::numerics {

// Asks Linux to back the whole 2 MiB pages inside [data, data + bytes) with huge pages; only worth
// it before the memory is first touched. A hint: failure is harmless, and buffers under 8 MiB are
// left alone.
void advise_huge_pages(float* data, int64_t bytes);

// A [rows, cols] matrix whose contents are unspecified (not even zeroed), huge-page advised.
Mat large_matrix(int64_t rows, int64_t cols);

}  // namespace tpsim::numerics
