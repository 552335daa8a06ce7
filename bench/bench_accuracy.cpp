// Accuracy report: every measured nccl-tests table in data/reference against the preset that
// stands for its cluster, busbw error at sizes >= 1 MiB (the sizes TP/DP/PP messages have), and
// the two Megatron-LM tables (Narayanan et al. 2021 Table 1, Korthikanti et al. 2022 Table 4)
// against `tpsim run` on cluster-a100-hdr. Each table says whether the presets' constants were
// fitted on it (in-sample) or not (out-of-sample: the honest figure of what tpsim predicts on
// clusters it was not tuned to). Prints tables; asserts nothing (the tests hold the bounds).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "csv_cells.hpp"
#include "h200_tables.hpp"
#include "megatron_a100.hpp"
#include "tpsim/cost.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/spec.hpp"

using namespace tpsim;

namespace {

struct Row {
  double bytes = 0, busbw = 0;   // B, GB/s
};

// Rows of a reference file: "tag,size_B,time_us,algbw,busbw" when `tag` is given, else
// "size_B,time_us,algbw,busbw". Lines starting with '#' are comments.
std::vector<Row> rows(const std::string& file, const std::string& tag) {
  std::ifstream in(std::string(TPSIM_SOURCE_DIR) + "/data/reference/" + file);
  std::vector<Row> out;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> cell = csv_cells(line);
    const size_t first = tag.empty() ? 0 : 1;
    if (!tag.empty() && cell[0] != tag) continue;
    if (cell.size() < first + 4) continue;
    const Row r{std::stod(cell[first]), std::stod(cell[first + 3])};
    if (r.bytes >= (1 << 20)) out.push_back(r);
  }
  return out;
}

struct Table {
  const char* label;
  const char* file;
  const char* tag;
  const char* preset;
  int nodes, gpus;
  CollectiveOp op;
  Algorithm algorithm;
  const char* fitted;   // what of it the presets were fitted on ("" = nothing: out-of-sample)
  const char* nccl = "";   // collectives.nccl_version for `auto` ("" = the preset's: tpsim's own pick)
};

// A table's errors (predicted / measured - 1) as its summary columns, in percent.
struct Summary {
  double mean_abs = 0, worst = 0, bias = 0, median = 0;
};
Summary summarise(std::vector<double> errors) {
  Summary s;
  if (errors.empty()) return s;
  const double n = double(errors.size());
  for (double x : errors) s.mean_abs += 100 * std::fabs(x) / n, s.worst = std::max(s.worst, 100 * std::fabs(x)), s.bias += 100 * x / n;
  std::nth_element(errors.begin(), errors.begin() + std::ptrdiff_t(errors.size() / 2), errors.end());
  s.median = 100 * errors[errors.size() / 2];
  return s;
}

// The H200 GEMM table against the hgx-h200 preset: the BF16 shapes per kind on the odd rows (the
// shape constants are fitted on the even ones; the preset's ceiling is this table's sustained
// rate), the FP8 grid whole (nothing fitted on it).
void gemm_report(bool per_row) {
  const tpsim::GpuSpec gpu = tpsim::load_topology("hgx-h200").gpu;
  std::printf("\nGEMMs measured on one H200 (gemm_h200.csv) against hgx-h200, error = predicted / measured time - 1; the\n"
              "preset launches eagerly (4 us), the table was timed by CUDA-graph replay (~2.9 us): small shapes come out slow\n");
  std::printf("%-46s %5s %10s %10s %10s %10s  %s\n", "table", "rows", "mean |err|", "max |err|", "bias", "median", "fitted on it");
  struct Part {
    const char *dtype, *kind, *label, *fitted;
    size_t first, stride;
  };
  const char* bf16_fit = "odd rows; shape constants fitted on the even rows, ceiling on the table";
  for (const Part& part : {Part{"bf16", "layer", "H200 bf16 GEMMs, model layer shapes", bf16_fit, 1, 2},
                           Part{"bf16", "grid", "H200 bf16 GEMMs, power-of-two grid", bf16_fit, 1, 2},
                           Part{"bf16", "decode", "H200 bf16 GEMMs, decode shapes", bf16_fit, 1, 2},
                           Part{"fp8", "", "H200 fp8 GEMMs, 1024-8192 grid", "out-of-sample: the FP8 MAMF, nothing fitted", 0, 1}}) {
    const std::vector<H200Gemm> all = h200_gemms(part.dtype);
    const tpsim::DType dtype = std::string(part.dtype) == "fp8" ? tpsim::DType::fp8 : tpsim::DType::bf16;
    std::vector<double> e;
    for (size_t i = part.first; i < all.size(); i += part.stride) {
      const H200Gemm& r = all[i];
      if (*part.kind && r.kind != part.kind) continue;
      e.push_back(tpsim::gemm_cost(gpu, tpsim::GemmInfo{r.m, r.n, r.k}, dtype).seconds / r.seconds - 1);
      if (per_row)
        std::printf("  %-40s %6lld x %6lld x %6lld  %+6.1f%%\n", part.label, (long long)r.m, (long long)r.n, (long long)r.k, 100 * e.back());
    }
    if (e.empty()) continue;
    const Summary s = summarise(e);
    std::printf("%-46s %5zu %9.1f%% %9.1f%% %+9.1f%% %+9.1f%%  %s\n", part.label, e.size(), s.mean_abs, s.worst, s.bias,
                s.median, part.fitted);
  }
}

// The Megatron-LM tables: their one fitted constant (the attention score bytes) fitted on both
// tables (in sample) and on the other table alone (this one held out).
void megatron_report(bool per_row) {
  spdlog::set_level(spdlog::level::err);   // each run's note that its TP collectives are folded (said below)
  const MegatronFit m;
  const double both = m.fit([](size_t) { return true; });
  std::printf("\nMegatron-LM on A100 (cluster-a100-hdr) as tpsim run times it (flow fidelity, TP collectives folded at\n"
              "their uncontended time), error = predicted / measured - 1 (TFLOP/s per GPU; one layer's ms)\n");
  std::printf("%-46s %5s %10s %10s %10s  %s\n", "table", "rows", "mean |err|", "max |err|", "bias", "score bytes fitted on");
  const std::pair<const char*, const char*> tables[] = {{"narayanan", "Narayanan 2021 Table 1 (TFLOP/s per GPU)"},
                                                        {"korthikanti", "Korthikanti 2022 Table 4 (22B layer fwd, bwd)"}};
  for (const auto& [fold, label] : tables) {
    const double alone = m.fit([&](size_t e) { return !m.in_fold(e, fold); });
    for (const auto& [b, how] : {std::pair{both, "both tables: in sample"}, std::pair{alone, "the other table: held out"}}) {
      std::vector<double> errors;
      for (size_t e = 0; e < m.entries.size(); ++e) {
        if (!m.in_fold(e, fold)) continue;
        errors.push_back(m.error(e, b));
        if (per_row) std::printf("  %-40s %+6.1f%%  (%.1f B)\n", m.entries[e].name.c_str(), 100 * errors.back(), b);
      }
      const Summary s = summarise(errors);
      std::printf("%-46s %5zu %9.1f%% %9.1f%% %+9.1f%%  %s (%.1f B)\n", label, errors.size(), s.mean_abs, s.worst, s.bias, how, b);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool per_row = argc > 1 && std::string(argv[1]) == "--rows";   // every row, not only the summary
  const Table tables[] = {
      {"H100 1 node all-reduce ring", "together_h100_1node_ring.csv", "allreduce_ring", "dgx-h100", 1, 8,
       CollectiveOp::all_reduce, Algorithm::ring, "in-sample: link efficiency (8 GiB row), launch latency"},
      {"H100 1 node all-gather ring", "together_h100_1node_ring.csv", "allgather_ring", "dgx-h100", 1, 8,
       CollectiveOp::all_gather, Algorithm::ring, "constants from the all-reduce rows"},
      {"H100 1 node reduce-scatter ring", "together_h100_1node_ring.csv", "reducescatter_ring", "dgx-h100", 1, 8,
       CollectiveOp::reduce_scatter, Algorithm::ring, "constants from the all-reduce rows"},
      {"H100 1 node all-reduce NVLS", "together_h100_1node_ring.csv", "allreduce_nvlsfile", "dgx-h100", 1, 8,
       CollectiveOp::all_reduce, Algorithm::nvls,
       "out-of-sample; its rows equal the ring table's within 0.5%: NVLS did not run there"},
      {"A100 1 node all-reduce", "oci_a100_bm_gpu4_8.csv", "a100_1node", "dgx-a100", 1, 8, CollectiveOp::all_reduce,
       Algorithm::automatic, "in-sample: link efficiency, launch latency"},
      {"A100 2 nodes all-reduce (old)", "oci_a100_bm_gpu4_8.csv", "a100_2node_old", "cluster-a100-hdr", 2, 16,
       CollectiveOp::all_reduce, Algorithm::automatic, ""},
      {"A100 2 nodes all-reduce (new)", "oci_a100_bm_gpu4_8.csv", "a100_2node_new", "cluster-a100-hdr", 2, 16,
       CollectiveOp::all_reduce, Algorithm::automatic, ""},
      {"H100 2 nodes all-reduce (IB; NCCL's pick)", "dgx_h100_2node.txt", "", "cluster-h100-ndr", 2, 16,
       CollectiveOp::all_reduce, Algorithm::automatic, "in-sample for rows >= 2 GiB: NVLS-tree NVLink efficiency", "2.23"},
      {"H100 2 nodes all-reduce (EFA; NCCL's pick)", "aws_p5_2node.csv", "", "aws-p5-efa", 2, 16, CollectiveOp::all_reduce,
       Algorithm::automatic, "EFA NIC latency from its 8 B row (not scored); NVLS-tree efficiency held out", "2.23"},
      {"H100 2 nodes all-reduce (EFA; tpsim's pick)", "aws_p5_2node.csv", "", "aws-p5-efa", 2, 16,
       CollectiveOp::all_reduce, Algorithm::automatic, "as above; 16 MiB runs the tree (README)"},
      {"H100 2 nodes all-reduce (EFA; IB preset)", "aws_p5_2node.csv", "", "cluster-h100-ndr", 2, 16,
       CollectiveOp::all_reduce, Algorithm::automatic, ""},
  };
  std::printf("Collective accuracy, busbw at sizes >= 1 MiB, flow fidelity (error = predicted / measured - 1);\n"
              "\"NCCL's pick\": auto follows NCCL 2.23's tuning model (what the measured run picked), else tpsim's fastest\n");
  std::printf("%-44s %-17s %5s %10s %10s %10s  %s\n", "table", "preset", "rows", "mean |err|", "max |err|", "bias",
              "fitted on it");
  for (const Table& t : tables) {
    const std::vector<Row> measured = rows(t.file, t.tag);
    if (measured.empty()) {
      std::printf("%-44s (no rows read)\n", t.label);
      continue;
    }
    std::vector<Override> sets = {{"topology.nodes", std::to_string(t.nodes)}};
    if (*t.nccl) sets.push_back({"topology.collectives.nccl_version", t.nccl});
    const Topology topo = load_topology(t.preset, sets);
    std::vector<int> group(static_cast<size_t>(t.gpus));
    std::iota(group.begin(), group.end(), 0);
    std::vector<double> errors;
    for (const Row& r : measured) {
      const CollectiveTiming c = time_collective(topo, t.op, t.algorithm, group, r.bytes, EngineOptions{Fidelity::flow});
      const double err = c.busbw / 1e9 / r.busbw - 1;
      if (per_row)
        std::printf("  %-40s %12.0f B  measured %7.1f GB/s  predicted %7.1f GB/s  %+6.1f%%  %s\n", t.label, r.bytes,
                    r.busbw, c.busbw / 1e9, 100 * err, describe(c.instance).c_str());
      errors.push_back(err);
    }
    const Summary s = summarise(errors);
    std::printf("%-44s %-17s %5zu %9.1f%% %9.1f%% %+9.1f%%  %s\n", t.label, t.preset, measured.size(), s.mean_abs, s.worst,
                s.bias, *t.fitted ? t.fitted : "out-of-sample");
  }
  gemm_report(per_row);
  megatron_report(per_row);
  return 0;
}
