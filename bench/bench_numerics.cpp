// Numerics speed: GEMM GFLOP/s (the numerics' FMA-chain GEMM, Eigen's own product, OpenBLAS
// sgemm; same run, same threads) on square matrices and on every GEMM shape of one Llama-2-7B
// layer, then the wall time and peak memory of verifying that full-size layer (hidden 4096, ffn
// 11008, 32 heads, seq 2048, TP=8, forward and backward, sharded and unsharded). The header names
// the GEMM's code path (TPSIM_GEMM_ISA=avx2|avx512|scalar forces one) and the OpenBLAS kernel it is
// compared with. `bench_numerics --gemm-only` skips the layer, `--layer-only` the GEMM tables;
// `--profile` times the layer's runs per kind of work instead of the tables.
// Goal (issue 11): the layer verified in < 30 s wall on 2 cores; 21-25 s on the 2-core AMD EPYC
// Zen 5 VM, 2026-11-30 (49-97 s before the collectives, attention and comparisons were reworked).
#include <fmt/core.h>
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "machine.hpp"
#include "numerics/executor.hpp"
#include "numerics/kernels.hpp"
#include "numerics/parallel.hpp"
#include "tpsim/lower.hpp"
#include "tpsim/numerics.hpp"

#ifdef TPSIM_BENCH_OPENBLAS
extern "C" void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
                       const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
                       const int* ldc);
extern "C" void openblas_set_num_threads(int);
extern "C" char* openblas_get_corename(void);
#endif

using namespace tpsim;
using numerics::Mat;

namespace {

template <class F>
double best_seconds(F f, int repeats) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// OpenBLAS picks its kernel from the CPU id at load time and falls back to an older one on a CPU
// it does not know; OPENBLAS_CORETYPE overrides the pick (the sandbox this was measured in sets it
// to Haswell, OpenBLAS's AVX2 kernel, where 0.3.21 itself picks Cooperlake's AVX-512 one on Zen 5).
// A ratio means little without knowing which kernel it was against.
void print_paths() {
  fmt::print("numerics GEMM path: {} (this CPU runs {}; TPSIM_GEMM_ISA forces one)\n", numerics::gemm_isa(),
             fmt::join(numerics::gemm_isas(), ", "));
#ifdef TPSIM_BENCH_OPENBLAS
  std::string core = openblas_get_corename();
  fmt::print("OpenBLAS kernel: {}\n", core);
  if (const char* forced = std::getenv("OPENBLAS_CORETYPE")) {
    fmt::print("warning: OPENBLAS_CORETYPE={} is set: OpenBLAS runs that kernel, not the one it picks for this CPU "
               "(unset it to compare with OpenBLAS's own choice)\n", forced);
  } else {
    std::transform(core.begin(), core.end(), core.begin(), [](unsigned char ch) { return std::tolower(ch); });
    const bool avx512_core = core.find("skylakex") != std::string::npos || core.find("cooperlake") != std::string::npos ||
                             core.find("sapphire") != std::string::npos;
    if (__builtin_cpu_supports("avx512f") && !avx512_core)
      fmt::print("note: OpenBLAS picked a kernel without AVX-512 on this AVX-512 CPU; OPENBLAS_CORETYPE=SkylakeX "
                 "compares with its AVX-512 one\n");
  }
#else
  fmt::print("OpenBLAS: not linked (no comparison)\n");
#endif
}

void gemm_table() {
  const int threads = numerics::worker_count();
  fmt::print("GEMM C = A B, fp32, square n, {} threads (best of 30 / 10 / 4 runs at n = 512 / 1024 / 2048)\n", threads);
  fmt::print("{:>6} | {:>22} | {:>22} | {:>16} | {:>14}\n", "n", "tpsim FMA-chain GFLOP/s", "Eigen (col split) GFLOP/s",
             "OpenBLAS GFLOP/s", "tpsim/OpenBLAS");
#ifdef EIGEN_USE_BLAS
  const char* eigen_mode = "Eigen routed to BLAS (TPSIM_USE_BLAS=ON)";
#else
  const char* eigen_mode = "Eigen's own kernels";
#endif
  // OpenBLAS's idle threads spin (yielding) for a while after start-up and after each call; on 2
  // cores that takes a core from whatever is timed next. Let them fall asleep before timing.
  const auto let_openblas_sleep = [] { std::this_thread::sleep_for(std::chrono::milliseconds(500)); };
  let_openblas_sleep();
  for (int n : {512, 1024, 2048}) {
    const Mat a = Mat::Random(n, n), b = Mat::Random(n, n);
    Mat c(n, n);
    const double flops = 2.0 * n * n * n;
    const int reps = n == 512 ? 30 : n == 1024 ? 10 : 4;   // best of many: the machine is shared
    GemmInfo g{n, n, n, false, false, false};
    const double t_tpsim = best_seconds([&] { numerics::gemm(g, a, b, c); }, reps);
    const double t_eigen = best_seconds([&] {
      numerics::parallel_for(n, [&](int64_t j0, int64_t j1) {
        c.middleCols(j0, j1 - j0).noalias() = a * b.middleCols(j0, j1 - j0);
      }, 16);
    }, reps);
    double t_blas = 0;
#ifdef TPSIM_BENCH_OPENBLAS
    openblas_set_num_threads(threads);
    const float one = 1, zero = 0;
    // Row-major C = A B is column-major C^T = B^T A^T.
    t_blas = best_seconds([&] { sgemm_("N", "N", &n, &n, &n, &one, b.data(), &n, a.data(), &n, &zero, c.data(), &n); }, reps);
    let_openblas_sleep();
#endif
    fmt::print("{:>6} | {:>22.1f} | {:>22.1f} | {:>16} | {:>14}\n", n, flops / t_tpsim / 1e9, flops / t_eigen / 1e9,
               t_blas > 0 ? fmt::format("{:.1f}", flops / t_blas / 1e9) : "n/a",
               t_blas > 0 ? fmt::format("{:.0f}%", 100 * t_blas / t_tpsim) : "n/a");
  }
  fmt::print("(Eigen column: {})\n\n", eigen_mode);
}

Scenario llama_layer_scenario() {
  Scenario s;
  s.model.name = "llama2-7b";
  s.model.hidden = 4096;
  s.model.ffn = 11008;
  s.model.heads = s.model.kv_heads = 32;
  s.model.layers = 1;
  s.model.vocab = 32000;
  s.model.max_seq = 4096;
  s.model.activation = Activation::swiglu;
  s.model.norm = Norm::rmsnorm;
  s.plan.tp = 8;
  s.workload.seq = 2048;
  s.workload.micro_batch = 1;
  return s;
}

LowerOptions layer_fwd_bwd() {
  LowerOptions lo;
  lo.scope = LowerScope::layer;
  lo.backward = true;
  return lo;
}

// The distinct GEMMs of one Llama-2-7B layer, forward and backward, as the verify runs them: one
// TP=8 rank's (every rank has the same) and the unsharded run's, each with the ops that have it.
struct LayerGemm {
  GemmInfo g;
  std::string ops;
  bool sharded;
};

std::vector<LayerGemm> layer_gemms() {
  std::vector<LayerGemm> out;
  const Scenario s = llama_layer_scenario();
  for (const bool sharded : {true, false}) {
    const ProgramSet set = lower(sharded ? s : unsharded(s), layer_fwd_bwd());
    for (const Op& op : set.ranks.at(0).ops) {
      if (op.kind != OpKind::gemm) continue;
      const GemmInfo& g = op.gemm;
      const std::string name = op.name.substr(op.name.find('.') + 1);   // drop "layer0."
      auto same = std::find_if(out.begin(), out.end(), [&](const LayerGemm& x) {
        return x.sharded == sharded && x.g.m == g.m && x.g.n == g.n && x.g.k == g.k && x.g.trans_a == g.trans_a &&
               x.g.trans_b == g.trans_b;
      });
      if (same == out.end()) out.push_back({g, name, sharded});
      else same->ops += ", " + name;
    }
  }
  return out;
}

// Each layer GEMM timed as the numerics run it (fresh operands, C overwritten), best of a few runs
// taken in turn with OpenBLAS's so both see the same load from other processes.
void layer_gemm_table() {
  const int threads = numerics::worker_count();
  fmt::print("GEMMs of one Llama-2-7B layer (TP=8 rank, then unsharded), fp32, {} threads, best of 5 / 3 runs\n", threads);
  fmt::print("{:<44} | {:>20} | {:>13} | {:>16} | {:>14}\n", "ops", "m x n x k", "tpsim GFLOP/s", "OpenBLAS GFLOP/s",
             "tpsim/OpenBLAS");
  double flops_all = 0, t_all = 0, t_blas_all = 0, worst = 1e30;
  for (const LayerGemm& L : layer_gemms()) {
    const GemmInfo& g = L.g;
    const int m = int(g.m), n = int(g.n), k = int(g.k);
    const Mat a = g.trans_a ? Mat(Mat::Random(k, m)) : Mat(Mat::Random(m, k));
    const Mat b = g.trans_b ? Mat(Mat::Random(n, k)) : Mat(Mat::Random(k, n));
    Mat c = Mat::Zero(m, n);
    const GemmInfo run{g.m, g.n, g.k, g.trans_a, g.trans_b, false};
    const double flops = 2.0 * m * n * k;
    double t = 1e30, t_blas = 1e30;
    for (int r = 0; r < (L.sharded ? 5 : 3); ++r) {
      t = std::min(t, best_seconds([&] { numerics::gemm(run, a, b, c); }, 1));
#ifdef TPSIM_BENCH_OPENBLAS
      openblas_set_num_threads(threads);
      const float one = 1, zero = 0;
      const int lda = int(a.cols()), ldb = int(b.cols());
      // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
      t_blas = std::min(t_blas, best_seconds([&] {
        sgemm_(g.trans_b ? "T" : "N", g.trans_a ? "T" : "N", &n, &m, &k, &one, b.data(), &ldb, a.data(), &lda, &zero,
               c.data(), &n);
      }, 1));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));   // OpenBLAS's threads stop spinning
#endif
    }
    const std::string shape = fmt::format("{}x{}x{}{}{}", m, n, k, g.trans_a ? " A^T" : "", g.trans_b ? " B^T" : "");
    const std::string ops = (L.sharded ? "tp8 " : "full ") + L.ops;
    const bool have_blas = t_blas < 1e30;
    fmt::print("{:<44.44} | {:>20} | {:>13.1f} | {:>16} | {:>14}\n", ops, shape, flops / t / 1e9,
               have_blas ? fmt::format("{:.1f}", flops / t_blas / 1e9) : "n/a",
               have_blas ? fmt::format("{:.0f}%", 100 * t_blas / t) : "n/a");
    flops_all += flops, t_all += t, t_blas_all += t_blas, worst = std::min(worst, t_blas / t);
  }
  if (t_blas_all < 1e30)
    fmt::print("all layer GEMMs: tpsim {:.1f} GFLOP/s, OpenBLAS {:.1f} GFLOP/s, tpsim/OpenBLAS {:.0f}% (worst shape {:.0f}%)\n",
               flops_all / t_all / 1e9, flops_all / t_blas_all / 1e9, 100 * t_blas_all / t_all, 100 * worst);
  fmt::print("\n");
}

// --profile: wall seconds per kind of work, the unsharded and the sharded run apart (no comparing).
void llama_layer_profile() {
  const Scenario s = llama_layer_scenario();
  for (const bool sharded : {false, true}) {
    std::map<std::string, numerics::ExecOptions::Spent> profile;
    numerics::ExecOptions o;
    o.profile = &profile;
    const auto t0 = std::chrono::steady_clock::now();
    numerics::execute(lower(sharded ? s : unsharded(s), layer_fwd_bwd()), o);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print("{} run: {:.1f} s wall\n", sharded ? "sharded (TP=8)" : "unsharded", seconds);
    double gemm_total = 0;
    for (const auto& [kind, spent] : profile) {
      const double t = spent.seconds;
      long long m = 0, n = 0, k = 0;
      if (std::sscanf(kind.c_str(), "gemm %lldx%lldx%lld", &m, &n, &k) == 3) {
        gemm_total += t;
        fmt::print("  {:<32} {:>7.2f} s  {:>4} calls, {:.1f} GFLOP/s\n", kind, t, spent.calls,
                   2.0 * m * n * k * spent.calls / t / 1e9);
      } else {
        fmt::print("  {:<32} {:>7.2f} s  {:>4} calls\n", kind, t, spent.calls);
      }
    }
    fmt::print("  {:<32} {:>7.2f} s\n", "all gemms", gemm_total);
  }
}

void llama_layer() {
  const Scenario s = llama_layer_scenario();
  const LowerOptions lo = layer_fwd_bwd();
  const auto t0 = std::chrono::steady_clock::now();
  const NumericsReport r = verify(lower(s, lo), lower(unsharded(s), lo), NumericsOptions{});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  fmt::print("Verify one Llama-2-7B layer (h 4096, ffn 11008, 32 heads, seq 2048, TP=8, fwd+bwd, fp32; GEMM path {})\n",
             numerics::gemm_isa());
  const double cpu = u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
  fmt::print("{:>8} | {:>22} | {:>14} | {:>8} | {:>8} | {:>12}\n", "wall s", "CPU s (whole process)", "peak RSS GiB",
             "checks", "verdict", "max rel err");
  fmt::print("{:>8.1f} | {:>22.1f} | {:>14.2f} | {:>8} | {:>8} | {:>12.2e}\n", seconds, cpu, u.ru_maxrss / 1048576.0,
             r.checks.size(), r.ok ? "pass" : "FAIL", r.max_rel);
  fmt::print("(wall time depends on what else runs: CPU s / cores is the unloaded estimate)\n");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  fmt::print("{}\n", tpsim::bench::machine_line());
  print_paths();
  fmt::print("\n");
  if (mode != "--profile" && mode != "--layer-only") {
    gemm_table();
    std::fflush(stdout);
    layer_gemm_table();
    std::fflush(stdout);
  }
  if (mode == "--profile") llama_layer_profile();
  else if (mode != "--gemm-only") llama_layer();
  return 0;
}
