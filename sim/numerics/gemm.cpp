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
constexpr int64_t KC = 384, MC = 144, NC = 3072;   // L1 (B micro-panel 24 KiB) / L2 (A block 216 KiB) / L3 (B block)

// c[MR][NR] = chain of a*b over kc steps, started from 0 (kZero) or from c's current values.
// Starting from 0 is the same chain as starting from a zeroed tile: fma(a, b, 0) = a*b rounded.
template <bool kZero>
inline void micro_kernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc) {
#if defined(__AVX2__) && defined(__FMA__)
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
  if constexpr (kZero) {
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
  } else {
    c00 = _mm256_loadu_ps(c + 0 * ldc), c01 = _mm256_loadu_ps(c + 0 * ldc + 8);
    c10 = _mm256_loadu_ps(c + 1 * ldc), c11 = _mm256_loadu_ps(c + 1 * ldc + 8);
    c20 = _mm256_loadu_ps(c + 2 * ldc), c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
    c30 = _mm256_loadu_ps(c + 3 * ldc), c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
    c40 = _mm256_loadu_ps(c + 4 * ldc), c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
    c50 = _mm256_loadu_ps(c + 5 * ldc), c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
  }
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
    for (int64_t j = 0; j < NR; ++j) acc[i][j] = kZero ? 0.0f : c[i * ldc + j];
  for (int64_t p = 0; p < kc; ++p, ap += MR, bp += NR)
    for (int64_t i = 0; i < MR; ++i)
      for (int64_t j = 0; j < NR; ++j) acc[i][j] += ap[i] * bp[j];
  for (int64_t i = 0; i < MR; ++i)
    for (int64_t j = 0; j < NR; ++j) c[i * ldc + j] = acc[i][j];
#endif
}

// op(X) of a row-major matrix: element (r, c) is data[r * ld + c], or data[c * ld + r] when trans.
struct Operand {
  const float* data;
  int64_t ld;
  bool trans;
};

// Packs op(A)[i0 .. i0+mc, p0 .. p0+kc) into MR-row panels [panel][p][MR], zero rows past i_end.
void pack_a(const Operand& a, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int64_t i_end, float* out) {
  for (int64_t ip = 0; ip < mc; ip += MR) {
    const int64_t i = i0 + ip, rows = std::min(MR, i_end - i);
    if (a.trans) {  // op(A) rows are contiguous in memory along i
      const float* src = a.data + p0 * a.ld + i;
      for (int64_t p = 0; p < kc; ++p, src += a.ld, out += MR) {
        int64_t r = 0;
        for (; r < rows; ++r) out[r] = src[r];
        for (; r < MR; ++r) out[r] = 0.0f;
      }
    } else if (rows == MR) {
      const float* s0 = a.data + i * a.ld + p0;
      const float *s1 = s0 + a.ld, *s2 = s1 + a.ld, *s3 = s2 + a.ld, *s4 = s3 + a.ld, *s5 = s4 + a.ld;
      for (int64_t p = 0; p < kc; ++p, out += MR) {
        out[0] = s0[p], out[1] = s1[p], out[2] = s2[p];
        out[3] = s3[p], out[4] = s4[p], out[5] = s5[p];
      }
    } else {
      for (int64_t p = 0; p < kc; ++p, out += MR)
        for (int64_t r = 0; r < MR; ++r) out[r] = r < rows ? a.data[(i + r) * a.ld + p0 + p] : 0.0f;
    }
  }
}

// Packs op(B)[p0 .. p0+kc, j0 .. j0+nc) into NR-column panels [panel][p][NR], zero columns past j_end.
void pack_b(const Operand& b, int64_t p0, int64_t kc, int64_t j0, int64_t nc, int64_t j_end, float* out) {
  for (int64_t jp = 0; jp < nc; jp += NR, out += kc * NR) {
    const int64_t j = j0 + jp, cols = std::min(NR, j_end - j);
    if (!b.trans) {
      const float* src = b.data + p0 * b.ld + j;
      for (int64_t p = 0; p < kc; ++p, src += b.ld) {
        float* dst = out + p * NR;
        if (cols == NR) {
          std::memcpy(dst, src, NR * sizeof(float));
        } else {
          for (int64_t c = 0; c < NR; ++c) dst[c] = c < cols ? src[c] : 0.0f;
        }
      }
    } else {  // op(B) columns are contiguous in memory along p
      for (int64_t c = 0; c < NR; ++c) {
        if (c >= cols) {
          for (int64_t p = 0; p < kc; ++p) out[p * NR + c] = 0.0f;
          continue;
        }
        const float* src = b.data + (j + c) * b.ld + p0;
        for (int64_t p = 0; p < kc; ++p) out[p * NR + c] = src[p];
      }
    }
  }
}

// Packing buffers, one set per thread (the pool's threads live for the process): no allocation
// or page faults per call.
float* pack_buffer(bool for_b) {
  thread_local std::vector<float, Eigen::aligned_allocator<float>> a(MC * KC), b(KC * NC);
  return for_b ? b.data() : a.data();
}

// C[i_begin .. i_end, j_begin .. j_end) for one thread.
void gemm_block(const Operand& a, const Operand& b, float* c, int64_t ldc, int64_t k, int64_t i_begin, int64_t i_end,
                int64_t j_begin, int64_t j_end, bool accumulate) {
  float* ap = pack_buffer(false);
  float* bp = pack_buffer(true);
  alignas(32) float edge[MR * NR];
  for (int64_t jc = j_begin; jc < j_end; jc += NC) {
    const int64_t nc = std::min(NC, j_end - jc), nc_padded = (nc + NR - 1) / NR * NR;
    for (int64_t pc = 0; pc < k; pc += KC) {
      const int64_t kc = std::min(KC, k - pc);
      const bool from_zero = pc == 0 && !accumulate;
      pack_b(b, pc, kc, jc, nc_padded, jc + nc, bp);
      for (int64_t ic = i_begin; ic < i_end; ic += MC) {
        const int64_t mc = std::min(MC, i_end - ic), mc_padded = (mc + MR - 1) / MR * MR;
        pack_a(a, ic, mc_padded, pc, kc, ic + mc, ap);
        for (int64_t jr = 0; jr < nc; jr += NR)
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t rows = std::min(MR, mc - ir), cols = std::min(NR, nc - jr);
            float* tile = c + (ic + ir) * ldc + jc + jr;
            const float* apanel = ap + ir * kc;
            const float* bpanel = bp + jr * kc;
            if (rows == MR && cols == NR) {
              if (from_zero) micro_kernel<true>(kc, apanel, bpanel, tile, ldc);
              else micro_kernel<false>(kc, apanel, bpanel, tile, ldc);
              continue;
            }
            // Edge tile: run the same chain on a staging tile.
            for (int64_t i = 0; i < MR; ++i)
              for (int64_t j = 0; j < NR; ++j) edge[i * NR + j] = from_zero || i >= rows || j >= cols ? 0.0f : tile[i * ldc + j];
            micro_kernel<false>(kc, apanel, bpanel, edge, NR);
            for (int64_t i = 0; i < rows; ++i) std::memcpy(tile + i * ldc, edge + i * NR, cols * sizeof(float));
          }
      }
    }
  }
}

}  // namespace

// GEMM: op(A) [m, k], op(B) [k, n] -> out [m, n]; out = 0 first unless accumulating.
// Threads take disjoint blocks of C: column blocks when C is at least as wide as tall (each block
// then packs all of A), row blocks otherwise (each packs all of B), so the repeated packing is
// the smaller operand's.
void gemm(const GemmInfo& g, const Mat& a, const Mat& b, Mat& out) {
  const int64_t m = g.trans_a ? a.cols() : a.rows(), k = g.trans_a ? a.rows() : a.cols();
  const int64_t kb = g.trans_b ? b.cols() : b.rows(), n = g.trans_b ? b.rows() : b.cols();
  if (k != kb || out.rows() != m || out.cols() != n)
    throw std::invalid_argument("gemm shapes do not fit: [" + std::to_string(m) + ", " + std::to_string(k) + "] x [" +
                                std::to_string(kb) + ", " + std::to_string(n) + "] -> [" + std::to_string(out.rows()) +
                                ", " + std::to_string(out.cols()) + "]");
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!g.accumulate) out.setZero();
    return;
  }
  const Operand A{a.data(), a.cols(), g.trans_a}, B{b.data(), b.cols(), g.trans_b};
  // Blocks handed out on demand, up to 4 per thread, so a thread slowed by other processes on
  // this shared machine takes fewer; 512 columns or 576 rows at least (unless that leaves a thread
  // idle), so repacking the shared operand per block stays a small part of the block's work.
  const double work = 2.0 * double(m) * n * k;
  const int64_t threads = worker_count(), parts = 4 * threads;
  const auto chunk = [&](int64_t extent, int64_t align, int64_t least) {
    const auto split = [&](int64_t ways) { return (extent + ways * align - 1) / (ways * align) * align; };
    return std::min(std::max(least, split(parts)), split(threads));   // never fewer blocks than threads
  };
  if (n >= m) {
    parallel_chunks(n, [&](int64_t j0, int64_t j1) { gemm_block(A, B, out.data(), n, k, 0, m, j0, j1, g.accumulate); },
                    chunk(n, NR, 32 * NR), work);
  } else {
    parallel_chunks(m, [&](int64_t i0, int64_t i1) { gemm_block(A, B, out.data(), n, k, i0, i1, 0, n, g.accumulate); },
                    chunk(m, MR, 4 * MC), work);
  }
}

}  // namespace tpsim::numerics
