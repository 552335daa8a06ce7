// Korthikanti et al. 2022 Table 4 (data/reference/korthikanti_2022_tables3-4.md): one transformer
// layer of the 22B model at TP 8, micro-batch 4, sequence 2048 on Selene (A100 80 GB), forward and
// backward in ms for five experiments, and the scenario each runs as: cluster-a100-hdr, one node,
// models/gpt-22b.yaml, the experiment's sequence parallelism and recomputation, a global batch of
// one micro-batch (Table 3: no DP). Read by `tpsim run` as "one layer: forward ... backward ...".
#pragma once

#include "csv_cells.hpp"

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tpsim/run.hpp"

struct KorthikantiRow {
  std::string experiment;   // "baseline_no_recompute", "sequence_parallel", ...
  bool sp = false;
  std::string recompute;    // none | selective | full
  double forward_ms = 0, backward_ms = 0;
};

inline std::vector<KorthikantiRow> korthikanti_rows() {
  std::ifstream in(std::string(TPSIM_REFERENCE_DIR) + "/korthikanti_2022_tables3-4.md");
  if (!in.good()) throw std::runtime_error("cannot read korthikanti_2022_tables3-4.md");
  std::vector<KorthikantiRow> rows;
  bool table4 = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# Table 4", 0) == 0) table4 = true;
    else if (line.rfind("#", 0) == 0) table4 = false;
    if (!table4 || line.empty() || line[0] == '#') continue;
    const std::vector<std::string> f = csv_cells(line);
    if (f.size() < 3) throw std::runtime_error("korthikanti_2022_tables3-4.md: a Table 4 row of " + std::to_string(f.size()) + " fields");
    KorthikantiRow r;
    r.experiment = f[0];
    r.sp = f[0].find("sequence") != std::string::npos;
    r.recompute = f[0].find("full_recompute") != std::string::npos ? "full"
                  : f[0].find("selective") != std::string::npos   ? "selective"
                                                                  : "none";
    r.forward_ms = std::stod(f[1]);
    r.backward_ms = std::stod(f[2]);
    rows.push_back(r);
  }
  return rows;
}

// The experiment as `tpsim run -t cluster-a100-hdr -m gpt-22b --set ...` runs it. Megatron-LM in
// 2022 accumulated weight gradients in the GEMM and overlapped the input gradient's TP reduction
// with the weight gradient: the plan's defaults.
inline tpsim::Scenario korthikanti_scenario(const KorthikantiRow& r, double score_bytes) {
  tpsim::ScenarioRequest request;
  request.topology = "cluster-a100-hdr";
  request.model = "gpt-22b";
  request.overrides = {{"topology.nodes", "1"},
                       {"plan.tp", "8"},
                       {"plan.pp", "1"},
                       {"plan.dp", "1"},
                       {"plan.sp", r.sp ? "true" : "false"},
                       {"plan.recompute", r.recompute},
                       {"workload.kind", "training"},
                       {"workload.global_batch", "4"},
                       {"workload.micro_batch", "4"},
                       {"workload.seq", "2048"}};
  tpsim::Scenario s = tpsim::load_scenario(request);
  s.topology.gpu.attention_score_bytes = score_bytes;
  return s;
}
