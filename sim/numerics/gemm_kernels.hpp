// The numerics GEMM's micro-kernels, one per instruction set, chosen at run time (gemm.cpp): each
// computes an MR x NR tile of C from packed panels a [kc][MR] and b [kc][NR] as one chain of fused
// multiply-adds per element over k in increasing order, started from 0 (`zero`) or from C. FMA is
// correctly rounded at any vector width, so every kernel gives the same bits. Each is compiled for
// its own target (no -march needed); only the CPU check decides which one runs.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#define TPSIM_GEMM_X86 1
#include <immintrin.h>
#endif

namespace tpsim::numerics::gemm_kernels {

// Starting from 0 is the same chain as starting from a zeroed tile: fma(a, b, 0) = a*b rounded.
using MicroKernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool zero);

#ifdef TPSIM_GEMM_X86
// AVX-512, MR x 16V: MR*V zmm accumulators c[i][v] = fma(bcast a[i], b[16v .. 16v+16), c[i][v]);
// per k step V loads of b, MR broadcasts of a.
template <int MR, int V>
__attribute__((target("avx512f"))) void avx512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool zero) {
  __m512 acc[MR][V];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[i][v] = zero ? _mm512_setzero_ps() : _mm512_loadu_ps(c + i * ldc + 16 * v);
  for (int64_t p = 0; p < kc; ++p, a += MR, b += 16 * V) {
    __m512 bv[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(c + i * ldc + 16 * v, acc[i][v]);
}

// AVX2 + FMA, MR x 8V: MR*V ymm accumulators c[i][v] = fma(bcast a[i], b[8v .. 8v+8), c[i][v]);
// per k step V loads of b, MR broadcasts of a.
template <int MR, int V>
__attribute__((target("avx2,fma"))) void avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool zero) {
  __m256 acc[MR][V];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[i][v] = zero ? _mm256_setzero_ps() : _mm256_loadu_ps(c + i * ldc + 8 * v);
  for (int64_t p = 0; p < kc; ++p, a += MR, b += 8 * V) {
    __m256 bv[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) bv[v] = _mm256_load_ps(b + 8 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) _mm256_storeu_ps(c + i * ldc + 8 * v, acc[i][v]);
}

#endif

// Portable, MR x NR: acc[i][j] = std::fma(a[i], b[j], acc[i][j]), the same chain in scalar code
// (std::fma, never a*b+c: an unfused multiply-add would round twice and change the bits).
template <int MR, int NR>
void scalar(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool zero) {
  float acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = zero ? 0.0f : c[i * ldc + j];
  for (int64_t p = 0; p < kc; ++p, a += MR, b += NR)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] = std::fma(a[i], b[j], acc[i][j]);
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) c[i * ldc + j] = acc[i][j];
}

}  // namespace tpsim::numerics::gemm_kernels
