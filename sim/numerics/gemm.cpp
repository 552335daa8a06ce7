// GEMM for the numerics: C (+)= op(A) op(B), fp32, packed panels and a 6x16 register tile
// (BLIS-style). Every element of C is ONE chain of fused multiply-adds over k in increasing order,
// started from 0 (or from C when accumulating): no split accumulators, no shape-dependent paths.
// So an element's bits depend only on its row of op(A) and column of op(B), never on the matrix
// shape, the blocking or the thread split: a column-parallel shard computes exactly the columns
// the unsharded GEMM computes (Eigen's own kernels switch accumulation paths at panel edges, so a
// shard of width 1376 would differ from the same columns of an 11008-wide product in the last
// bits). Partial sums of a k-split (row-parallel) then differ from the unsharded result only by
// how the shards are added.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "numerics/kernels.hpp"
#include "numerics/parallel.hpp"

namespace tpsim::numerics {

namespace {

constexpr int64_t MR = 6, NR = 16;                 // register tile
constexpr int64_t KC = 256, MC = 72, NC = 3072;    // L1 / L2 / L3 blocks

// acc[MR][NR] = chain of a*b over kc steps, from `c` (the tile's starting values).
inline void micro_kernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc) {
#if defined(__AVX2__) && defined(__FMA__)
  __m256 c00 = _mm256_loadu_ps(c + 0 * ldc), c01 = _mm256_loadu_ps(c + 0 * ldc + 8);
  __m256 c10 = _mm256_loadu_ps(c + 1 * ldc), c11 = _mm256_loadu_ps(c + 1 * ldc + 8);
  __m256 c20 = _mm256_loadu_ps(c + 2 * ldc), c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
  __m256 c30 = _mm256_loadu_ps(c + 3 * ldc), c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
  __m256 c40 = _mm256_loadu_ps(c + 4 * ldc), c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
  __m256 c50 = _mm256_loadu_ps(c + 5 * ldc), c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    _mm_prefetch(reinterpret_cast<const char*>(bp + 8 * NR), _MM_HINT_T0);
    const __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
    __m256 a = _mm256_broadcast_ss(ap + 0);
    c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(ap + 1);
    c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(ap + 2);
    c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(ap + 3);
    c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(ap + 4);
    c40 = _mm256_fmadd_ps(a, b0, c40), c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(ap + 5);
    c50 = _mm256_fmadd_ps(a, b0, c50), c51 = _mm256_fmadd_ps(a, b1, c51);
    ap += MR;
    bp += NR;
  }
  _mm256_storeu_ps(c + 0 * ldc, c00), _mm256_storeu_ps(c + 0 * ldc + 8, c01);
  _mm256_storeu_ps(c + 1 * ldc, c10), _mm256_storeu_ps(c + 1 * ldc + 8, c11);
  _mm256_storeu_ps(c + 2 * ldc, c20), _mm256_storeu_ps(c + 2 * ldc + 8, c21);
  _mm256_storeu_ps(c + 3 * ldc, c30), _mm256_storeu_ps(c + 3 * ldc + 8, c31);
  _mm256_storeu_ps(c + 4 * ldc, c40), _mm256_storeu_ps(c + 4 * ldc + 8, c41);
  _mm256_storeu_ps(c + 5 * ldc, c50), _mm256_storeu_ps(c + 5 * ldc + 8, c51);
#else
  // Portable: the same per-element chain (multiply then add when the target has no FMA).
  float acc[MR][NR];
  for (int64_t i = 0; i < MR; ++i)
    for (int64_t j = 0; j < NR; ++j) acc[i][j] = c[i * ldc + j];
  for (int64_t p = 0; p < kc; ++p, ap += MR, bp += NR)
    for (int64_t i = 0; i < MR; ++i)
      for (int64_t j = 0; j < NR; ++j) acc[i][j] += ap[i] * bp[j];
  for (int64_t i = 0; i < MR; ++i)
    for (int64_t j = 0; j < NR; ++j) c[i * ldc + j] = acc[i][j];
#endif
}

// Element (i, p) of op(A) and (p, j) of op(B), both stored row-major.
struct Operand {
  const float* data;
  int64_t ld;
  bool trans;
  float at(int64_t r, int64_t c) const { return trans ? data[c * ld + r] : data[r * ld + c]; }
};

// Packs op(A)[i0 .. i0+mc, p0 .. p0+kc) into MR-row panels [panel][p][MR], zero rows past m.
void pack_a(const Operand& a, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int64_t m, float* out) {
  for (int64_t ip = 0; ip < mc; ip += MR)
    for (int64_t p = 0; p < kc; ++p)
      for (int64_t r = 0; r < MR; ++r) {
        const int64_t i = i0 + ip + r;
        *out++ = i < m ? a.at(i, p0 + p) : 0.0f;
      }
}

// Packs op(B)[p0 .. p0+kc, j0 .. j0+nc) into NR-column panels [panel][p][NR], zero columns past n.
void pack_b(const Operand& b, int64_t p0, int64_t kc, int64_t j0, int64_t nc, int64_t n, float* out) {
  for (int64_t jp = 0; jp < nc; jp += NR)
    for (int64_t p = 0; p < kc; ++p) {
      const int64_t j = j0 + jp;
      if (!b.trans && j + NR <= n) {
        std::memcpy(out, b.data + (p0 + p) * b.ld + j, NR * sizeof(float));
        out += NR;
        continue;
      }
      for (int64_t c = 0; c < NR; ++c) *out++ = j + c < n ? b.at(p0 + p, j + c) : 0.0f;
    }
}

// C[:, j_begin .. j_end) for one thread.
void gemm_columns(const Operand& a, const Operand& b, float* c, int64_t ldc, int64_t m, int64_t k, int64_t j_begin,
                  int64_t j_end, bool accumulate) {
  std::vector<float, Eigen::aligned_allocator<float>> ap(MC * KC), bp(KC * NC);
  float edge[MR * NR];
  for (int64_t jc = j_begin; jc < j_end; jc += NC) {
    const int64_t nc = std::min(NC, j_end - jc), nc_padded = (nc + NR - 1) / NR * NR;
    for (int64_t pc = 0; pc < k; pc += KC) {
      const int64_t kc = std::min(KC, k - pc);
      const bool from_zero = pc == 0 && !accumulate;
      pack_b(b, pc, kc, jc, nc_padded, std::min(j_end, jc + nc), bp.data());
      for (int64_t ic = 0; ic < m; ic += MC) {
        const int64_t mc = std::min(MC, m - ic), mc_padded = (mc + MR - 1) / MR * MR;
        pack_a(a, ic, mc_padded, pc, kc, m, ap.data());
        for (int64_t jr = 0; jr < nc; jr += NR)
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t rows = std::min(MR, mc - ir), cols = std::min(NR, nc - jr);
            float* tile = c + (ic + ir) * ldc + jc + jr;
            const float* apanel = ap.data() + ir * kc;
            const float* bpanel = bp.data() + jr * kc;
            if (rows == MR && cols == NR && !from_zero) {
              micro_kernel(kc, apanel, bpanel, tile, ldc);
              continue;
            }
            // Edge or first block: run the same chain on a staging tile.
            for (int64_t i = 0; i < MR; ++i)
              for (int64_t j = 0; j < NR; ++j) edge[i * NR + j] = from_zero || i >= rows || j >= cols ? 0.0f : tile[i * ldc + j];
            micro_kernel(kc, apanel, bpanel, edge, NR);
            for (int64_t i = 0; i < rows; ++i) std::memcpy(tile + i * ldc, edge + i * NR, cols * sizeof(float));
          }
      }
    }
  }
}

}  // namespace

// GEMM: op(A) [m, k], op(B) [k, n] -> out [m, n]; out = 0 first unless accumulating.
void gemm(const GemmInfo& g, const Mat& a, const Mat& b, Mat& out) {
  const int64_t m = g.trans_a ? a.cols() : a.rows(), k = g.trans_a ? a.rows() : a.cols();
  const int64_t kb = g.trans_b ? b.cols() : b.rows(), n = g.trans_b ? b.rows() : b.cols();
  if (k != kb || out.rows() != m || out.cols() != n)
    throw std::invalid_argument("gemm shapes do not fit: [" + std::to_string(m) + ", " + std::to_string(k) + "] x [" +
                                std::to_string(kb) + ", " + std::to_string(n) + "] -> [" + std::to_string(out.rows()) +
                                ", " + std::to_string(out.cols()) + "]");
  if (k == 0) {
    if (!g.accumulate) out.setZero();
    return;
  }
  const Operand A{a.data(), a.cols(), g.trans_a}, B{b.data(), b.cols(), g.trans_b};
  parallel_for(n, [&](int64_t j0, int64_t j1) { gemm_columns(A, B, out.data(), out.cols(), m, k, j0, j1, g.accumulate); },
               NR, 2.0 * double(m) * n * k);
}

}  // namespace tpsim::numerics
