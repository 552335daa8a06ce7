// GEMM for the numerics: C (+)= op(A) op(B), fp32, packed panels and a register tile (BLIS-style)
// whose micro-kernel is picked once at run time for the CPU: AVX-512, AVX2 or scalar
// (gemm_kernels.hpp; TPSIM_GEMM_ISA forces one). Every element of C is ONE chain of fused
// multiply-adds over k in increasing order, started from 0 (or from C when accumulating): no split
// accumulators, no shape-dependent paths. So an element's bits depend only on its row of op(A) and
// column of op(B), never on the matrix shape, the blocking, the thread split or the instruction
// set (FMA is correctly rounded at any vector width): a column-parallel shard computes exactly the
// columns the unsharded GEMM computes (Eigen's own kernels switch accumulation paths at panel
// edges, so a shard of width 1376 would differ from the same columns of an 11008-wide product in
// the last bits). Partial sums of a k-split (row-parallel) then differ from the unsharded result
// only by how the shards are added.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "numerics/gemm.hpp"
#include "numerics/gemm_kernels.hpp"
#include "numerics/parallel.hpp"

namespace tpsim::numerics {

namespace {

// op(X) of a row-major matrix: element (r, c) is data[r * ld + c], or data[c * ld + r] when trans.
struct Operand {
  const float* data;
  int64_t ld;
  bool trans;
};

// Packs rows [p0, p0+kc) x columns [i0, i0+extent) of X into W-wide panels [panel][p][W], zeros
// past column i_end, where X(p, i) = data[p * ld + i] when along_i (a panel row is one copy) and
// data[i * ld + p] otherwise (a panel row takes one value from each of W rows of memory, read
// along p). W is a compile-time constant so the copies unroll.
template <int W>
void pack(const float* data, int64_t ld, bool along_i, int64_t i0, int64_t extent, int64_t i_end, int64_t p0,
          int64_t kc, float* out) {
  for (int64_t ip = 0; ip < extent; ip += W, out += kc * W) {
    const int64_t i = i0 + ip, w = std::min<int64_t>(W, i_end - i);
    if (w == W && along_i) {
      for (int64_t p = 0; p < kc; ++p) std::memcpy(out + p * W, data + (p0 + p) * ld + i, W * sizeof(float));
    } else if (w == W) {  // 8 rows of memory at a time: rows a power of two apart share an L1 set,
                          // and 32 of them evicted each other before their next use (2.5x slower)
#pragma GCC unroll 8
      for (int g = 0; g < W; g += 8) {
        const float* src = data + (i + g) * ld + p0;
        const int rows = std::min(8, W - g);
        for (int64_t p = 0; p < kc; ++p)
          for (int r = 0; r < rows; ++r) out[p * W + g + r] = src[r * ld + p];
      }
    } else {  // edge panel
      for (int64_t p = 0; p < kc; ++p)
        for (int64_t r = 0; r < W; ++r)
          out[p * W + r] = r >= w ? 0.0f : along_i ? data[(p0 + p) * ld + i + r] : data[(i + r) * ld + p0 + p];
    }
  }
}

// A code path: a micro-kernel, its register tile MR x NR, the packing for that tile, and the
// blocking: kc steps of k per pass over C (each pass loads and stores C once, so long passes keep
// C's traffic small), mc rows of A packed per block, sized with a b micro-panel (kc * NR) to stay
// in L2. The kernels read both panels from L2 fast enough: a 14x32 AVX-512 step loads 46 floats
// for 28 FMAs, and measured, kc 768 beat kc 256 (b micro-panel in L1) by 5-15%.
struct Path {
  const char* name;
  int64_t mr, nr, kc, mc;
  gemm_kernels::MicroKernel kernel;
  void (*pack_a)(const Operand& a, int64_t i0, int64_t mc, int64_t i_end, int64_t p0, int64_t kc, float* out);
  void (*pack_b)(const Operand& b, int64_t j0, int64_t nc, int64_t j_end, int64_t p0, int64_t kc, float* out);
  bool (*cpu_runs)();
};

template <int MR>
void pack_a(const Operand& a, int64_t i0, int64_t mc, int64_t i_end, int64_t p0, int64_t kc, float* out) {
  pack<MR>(a.data, a.ld, a.trans, i0, mc, i_end, p0, kc, out);
}
template <int NR>
void pack_b(const Operand& b, int64_t j0, int64_t nc, int64_t j_end, int64_t p0, int64_t kc, float* out) {
  pack<NR>(b.data, b.ld, !b.trans, j0, nc, j_end, p0, kc, out);
}

bool always() { return true; }
#ifdef TPSIM_GEMM_X86
bool has_avx512() { return __builtin_cpu_init(), __builtin_cpu_supports("avx512f"); }
bool has_avx2() { return __builtin_cpu_init(), __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#endif

// Best first; `name` is what TPSIM_GEMM_ISA selects.
constexpr Path kPaths[] = {
#ifdef TPSIM_GEMM_X86
    {"avx512", 14, 32, 768, 14 * 8, gemm_kernels::avx512<14, 2>, pack_a<14>, pack_b<32>, has_avx512},
    {"avx2", 6, 16, 384, 144, gemm_kernels::avx2<6, 2>, pack_a<6>, pack_b<16>, has_avx2},
#endif
    {"scalar", 4, 16, 384, 144, gemm_kernels::scalar<4, 16>, pack_a<4>, pack_b<16>, always},
};
constexpr int64_t NC = 3072;            // columns of B packed per block (L3)
constexpr int64_t kMaxTile = 16 * 64;   // staging tile for edges: MR * NR of any path

std::string available() {
  std::string names;
  for (const Path& p : kPaths)
    if (p.cpu_runs()) names += (names.empty() ? "" : ", ") + std::string(p.name);
  return names;
}

const Path& path_named(const std::string& name, const std::string& origin) {
  for (const Path& p : kPaths)
    if (name == p.name) {
      if (!p.cpu_runs()) throw std::runtime_error(origin + name + ": this CPU cannot run it (it runs " + available() + ")");
      return p;
    }
  throw std::runtime_error(origin + name + ": unknown GEMM path (avx512, avx2 or scalar)");
}

// The best path this CPU runs, unless TPSIM_GEMM_ISA names another; chosen on first use.
std::atomic<const Path*>& active_path() {
  static std::atomic<const Path*> active{[] {
    if (const char* env = std::getenv("TPSIM_GEMM_ISA"); env && *env) return &path_named(env, "TPSIM_GEMM_ISA=");
    for (const Path& p : kPaths)
      if (p.cpu_runs()) return &p;
    return &kPaths[std::size(kPaths) - 1];
  }()};
  return active;
}

// Packing buffers, one set per thread (the pool's threads live for the process): no allocation
// or page faults per call. 64-byte aligned for the kernels' aligned panel loads.
float* pack_buffer(bool for_b, size_t floats) {
  thread_local std::vector<float> a, b;
  std::vector<float>& v = for_b ? b : a;
  if (v.size() < floats + 16) v.resize(floats + 16);
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
}

// C[i_begin .. i_end, j_begin .. j_end) for one thread, with kernel K's tile and blocking.
void gemm_block(const Path& K, const Operand& a, const Operand& b, float* c, int64_t ldc, int64_t k, int64_t i_begin,
                int64_t i_end, int64_t j_begin, int64_t j_end, bool accumulate) {
  const int64_t MR = K.mr, NR = K.nr, KC = K.kc, MC = K.mc;
  float* ap = pack_buffer(false, MC * KC);
  float* bp = pack_buffer(true, KC * NC);
  alignas(64) float edge[kMaxTile];
  for (int64_t jc = j_begin; jc < j_end; jc += NC) {
    const int64_t nc = std::min(NC, j_end - jc), nc_padded = (nc + NR - 1) / NR * NR;
    for (int64_t pc = 0; pc < k; pc += KC) {
      const int64_t kc = std::min(KC, k - pc);
      const bool from_zero = pc == 0 && !accumulate;
      K.pack_b(b, jc, nc_padded, jc + nc, pc, kc, bp);
      for (int64_t ic = i_begin; ic < i_end; ic += MC) {
        const int64_t mc = std::min(MC, i_end - ic), mc_padded = (mc + MR - 1) / MR * MR;
        K.pack_a(a, ic, mc_padded, ic + mc, pc, kc, ap);
        for (int64_t jr = 0; jr < nc; jr += NR)
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t rows = std::min(MR, mc - ir), cols = std::min(NR, nc - jr);
            float* tile = c + (ic + ir) * ldc + jc + jr;
            const float* apanel = ap + ir * kc;
            const float* bpanel = bp + jr * kc;
            // Start fetching the next tile of C (down the column of tiles, then the next column):
            // its rows are far apart in memory and would otherwise stall the next kernel's start.
            const int64_t next_ir = ir + MR < mc ? ir + MR : 0, next_jr = ir + MR < mc ? jr : jr + NR;
            if (next_jr < nc)
              for (int64_t i = 0; i < std::min(MR, mc - next_ir); ++i)
                for (int64_t j = 0; j < std::min(NR, nc - next_jr); j += 16)
                  __builtin_prefetch(c + (ic + next_ir + i) * ldc + jc + next_jr + j, 1);
            if (rows == MR && cols == NR) {
              K.kernel(kc, apanel, bpanel, tile, ldc, from_zero);
              continue;
            }
            // Edge tile: run the same chain on a staging tile.
            for (int64_t i = 0; i < MR; ++i)
              for (int64_t j = 0; j < NR; ++j) edge[i * NR + j] = from_zero || i >= rows || j >= cols ? 0.0f : tile[i * ldc + j];
            K.kernel(kc, apanel, bpanel, edge, NR, false);
            for (int64_t i = 0; i < rows; ++i) std::memcpy(tile + i * ldc, edge + i * NR, cols * sizeof(float));
          }
      }
    }
  }
}

}  // namespace

std::string gemm_isa() { return active_path().load()->name; }

std::vector<std::string> gemm_isas() {
  std::vector<std::string> names;
  for (const Path& p : kPaths)
    if (p.cpu_runs()) names.push_back(p.name);
  return names;
}

void set_gemm_isa(const std::string& name) { active_path() = &path_named(name, ""); }

// Threads take disjoint blocks of C: column blocks when C is at least as wide as tall (each block
// then packs all of A), row blocks otherwise (each packs all of B), so the repeated packing is
// the smaller operand's.
void gemm(const GemmInfo& g, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
  const int64_t m = g.m, n = g.n, k = g.k;
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!g.accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  const Path& K = *active_path().load();
  const Operand A{a, lda, g.trans_a}, B{b, ldb, g.trans_b};
  // Blocks of equal size handed out on demand, a multiple of the thread count of them (so no thread
  // is left alone with a remainder), up to 4 per thread so a thread slowed by other processes on
  // this shared machine takes fewer, but 1024 rows or columns at least: each block repacks the
  // shared operand, which then stays ~1% of the block's work (512 measured 2-8% slower).
  const double work = 2.0 * double(m) * n * k;
  const int64_t threads = worker_count();
  const auto chunk = [&](int64_t extent, int64_t align) {
    const int64_t tiles = (extent + align - 1) / align, blocks = std::clamp<int64_t>(extent / (1024 * threads), 1, 4) * threads;
    return (tiles + blocks - 1) / blocks * align;
  };
  if (n >= m) {
    parallel_chunks(n, [&](int64_t j0, int64_t j1) { gemm_block(K, A, B, c, ldc, k, 0, m, j0, j1, g.accumulate); },
                    chunk(n, K.nr), work);
  } else {
    parallel_chunks(m, [&](int64_t i0, int64_t i1) { gemm_block(K, A, B, c, ldc, k, i0, i1, 0, n, g.accumulate); },
                    chunk(m, K.mr), work);
  }
}

}  // namespace tpsim::numerics
