// The planner tests' toy sweep: a 2-node cluster of 4 GPUs, a small model, and a fake evaluator
// with closed-form step times and a planted OOM, so sweeps of 92 layouts run in a blink.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tpsim/planner.hpp"

namespace tpsim_test {

using namespace tpsim;

// A 2-node cluster of 4 GPUs each and a model every mesh divides.
inline SweepSpec toy_spec() {
  SweepSpec s;
  s.model.name = "toy";
  s.model.hidden = 1024;
  s.model.ffn = 4096;
  s.model.heads = 16;
  s.model.kv_heads = 16;
  s.model.layers = 8;
  s.model.vocab = 1000;
  s.model.max_seq = 512;
  s.topology.name = "toy-cluster";
  s.topology.gpus_per_node = 4;
  s.topology.nodes = 2;
  s.topology.price_per_gpu_hour = 2.0;
  s.training.global_batch = 16;
  s.micro_batches = {1, 2};
  s.recomputes = {Recompute::none, Recompute::full};
  s.virtual_stages = {1, 2};
  return s;
}

// Closed-form step: compute splits over GPUs (full recompute costs a third more), each TP degree
// adds a fixed stall (less with SP), the pipeline bubble is (pp - 1) / m of the compute. Planted OOM:
// fewer than 4 GPUs per model replica.
inline LayoutResult fake_evaluate(const Scenario& s) {
  LayoutResult r;
  const PlanSpec& p = s.plan;
  if (p.tp * p.pp < 4) {
    r.verdict = Verdict::oom;
    r.reason = "OOM: weights overflow HBM (80.0 GiB) by 12.0 GiB on stage 0 (total 92.0 GiB)";
    return r;
  }
  const double m = double(s.workload.global_batch) / double(p.dp * s.workload.micro_batch);
  r.compute_s = 8.0 / p.world() * (p.recompute == Recompute::full ? 4.0 / 3.0 : 1.0);
  r.exposed_comm_s = 0.01 * (p.tp - 1) * (p.sp ? 0.5 : 1.0) / double(s.workload.micro_batch);
  r.bubble_s = r.compute_s * (p.pp - 1) / m / p.virtual_stages;
  r.step_time_s = r.compute_s + r.exposed_comm_s + r.bubble_s;
  r.memory_bytes = 40e9 / (p.tp * p.pp);
  return r;
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::filesystem::path scratch(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("tpsim_test_plan_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto p = dir / name;
  std::filesystem::remove(p);
  return p;
}

// A sweep on two workers that writes (and resumes from) `csv`.
inline SweepOptions writing_to(const std::filesystem::path& csv) {
  SweepOptions o;
  o.jobs = 2;
  o.csv = csv.string();
  return o;
}


}  // namespace tpsim_test
