// Buffers backed by 2 MiB pages. On the VMs tpsim runs on, first touching a 4 KiB page costs
// ~8 us, so a fresh 90 MB tensor took 22,000 faults (0.2 s) and a 7B layer's verify spent a
// quarter of its time in the kernel; with transparent huge pages ("madvise" mode) it takes 45.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tpsim {

// Asks Linux to back the whole 2 MiB pages inside [data, data + bytes) with huge pages; only worth
// it before the memory is first touched. A hint: failure is harmless, and buffers under 8 MiB are
// left alone.
void advise_huge_pages(void* data, int64_t bytes);

// Grows v to at least n elements (new ones zero), moving to huge-page-advised storage when it
// must reallocate; never shrinks, so a reused buffer keeps its memory.
void grow_huge(std::vector<float>& v, size_t n);

}  // namespace tpsim
