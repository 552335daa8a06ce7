// Narayanan et al. SC'21 Table 1 rows 1-5 (data/reference/narayanan_2021_table1_rows1-5.csv) and
// the scenario each row runs as: its TP, PP, GPUs and batch on cluster-a100-hdr, sequence 2048,
// full recomputation, no SP, and what the paper's run script gave each row
// (narayanan_2021_table1_run_config.csv: micro-batch 16, 16, 16, 8, 4; PyTorch DDP for rows 1-4,
// Megatron's local DDP for the 39.1B; --fp16), with Megatron-LM 2021's scheduling (below). Shared
// by the in-sample accuracy test and the leave-one-out calibration test.
#pragma once

#include "csv_cells.hpp"

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tpsim/run.hpp"

struct NarayananRow {
  std::string params;   // "1.7" -> models/gpt-1.7b.yaml
  int tp = 1, pp = 1, gpus = 1;
  int64_t batch = 0;
  double tflops = 0;    // the paper's achieved TFLOP/s per GPU
  // How the row ran (narayanan_2021_table1_run_config.csv, the paper's run script):
  int64_t micro_batch = 1;
  std::string ddp;         // torch (gradients reduced during the backward pass) | local (after it)
  std::string precision;   // fp16
};

inline std::vector<NarayananRow> narayanan_rows() {
  std::ifstream in(std::string(TPSIM_REFERENCE_DIR) + "/narayanan_2021_table1_rows1-5.csv");
  if (!in.good()) throw std::runtime_error("cannot read narayanan_2021_table1_rows1-5.csv");
  std::vector<NarayananRow> rows;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#' || line.rfind("params_B", 0) == 0) continue;
    const std::vector<std::string> f = csv_cells(line);
    if (f.size() < 9) throw std::runtime_error("narayanan_2021_table1_rows1-5.csv: a row of " + std::to_string(f.size()) + " fields");
    NarayananRow r;
    r.params = f[0], r.tp = std::stoi(f[4]), r.pp = std::stoi(f[5]), r.gpus = std::stoi(f[6]);
    r.batch = std::stoll(f[7]), r.tflops = std::stod(f[8]);
    rows.push_back(r);   // micro_batch, ddp and precision from the run config below
  }
  std::ifstream config(std::string(TPSIM_REFERENCE_DIR) + "/narayanan_2021_table1_run_config.csv");
  if (!config.good()) throw std::runtime_error("cannot read narayanan_2021_table1_run_config.csv");
  int configured = 0;
  for (std::string line; std::getline(config, line);) {
    if (line.empty() || line[0] == '#' || line.rfind("params_B", 0) == 0) continue;
    const std::vector<std::string> f = csv_cells(line);
    if (f.size() != 4) throw std::runtime_error("narayanan_2021_table1_run_config.csv: a row of " + std::to_string(f.size()) + " fields");
    for (NarayananRow& r : rows)
      if (r.params == f[0]) r.micro_batch = std::stoll(f[1]), r.ddp = f[2], r.precision = f[3], ++configured;
  }
  if (configured != static_cast<int>(rows.size())) throw std::runtime_error("narayanan_2021_table1_run_config.csv: not one row per Table 1 row");
  return rows;
}

// The row as `tpsim run -t cluster-a100-hdr -m gpt-<N>b --set ...` runs it, with `score_bytes` of
// HBM traffic per attention-score element (Megatron-LM 2021's unfused softmax and dropout).
inline tpsim::Scenario narayanan_scenario(const NarayananRow& r, double score_bytes) {
  tpsim::ScenarioRequest request;
  request.topology = "cluster-a100-hdr";
  request.model = "gpt-" + r.params + "b";
  request.overrides = {{"topology.nodes", std::to_string(r.gpus / 8)},
                       {"plan.tp", std::to_string(r.tp)},
                       {"plan.pp", std::to_string(r.pp)},
                       {"plan.dp", std::to_string(r.gpus / (r.tp * r.pp))},
                       {"plan.sp", "false"},
                       {"plan.recompute", "full"},
                       {"workload.kind", "training"},
                       {"workload.global_batch", std::to_string(r.batch)},
                       {"workload.micro_batch", std::to_string(r.micro_batch)},
                       {"workload.seq", "2048"},
                       // fp16: main gradients kept and all-reduced in fp16 (tpsim/memory.hpp).
                       {"model.dtype", r.precision},
                       // PyTorch DDP reduces gradient buckets as the last micro-batch's backward
                       // frees them; Megatron's local DDP of 2021 after the backward pass.
                       {"plan.dp_overlap", r.ddp == "torch" ? "true" : "false"},
                       // Megatron-LM as of 2021: each micro-batch's weight gradient added to the
                       // main gradient by its own kernel, the input gradient's TP all-reduce after
                       // the weight gradient.
                       {"plan.grad_accumulation_fusion", "false"},
                       {"plan.tp_grad_overlap", "false"}};
  tpsim::Scenario s = tpsim::load_scenario(request);
  s.topology.gpu.attention_score_bytes = score_bytes;
  return s;
}
