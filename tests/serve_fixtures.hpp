// What the serving tests build their runs from: a timer whose iterations take a fixed time (so
// every instant of a schedule is a sum of whole iterations), a scheduler's spec and a replica's KV
// capacity.
#pragma once

#include <string>
#include <vector>

#include "tpsim/serving.hpp"

// Every iteration takes `each` seconds; the shapes it was asked about are kept for the checks.
struct FixedTimer : tpsim::IterationTimer {
  double each = 1;
  std::vector<tpsim::IterationShape> shapes;
  explicit FixedTimer(double s = 1) : each(s) {}
  double seconds(const tpsim::IterationShape& shape) override {
    shapes.push_back(shape);
    return each;
  }
  std::string describe() const override { return "fixed 1 s per iteration"; }
};

inline tpsim::ServingSpec spec_of(const std::string& scheduler, int64_t max_batch) {
  tpsim::ServingSpec s;
  s.scheduler = scheduler;
  s.max_batch = max_batch;
  return s;
}

inline tpsim::ReplicaCapacity capacity_of(int64_t tokens, double bytes_per_token = 0) {
  tpsim::ReplicaCapacity c;
  c.kv_tokens = tokens;
  c.kv_bytes_per_token = bytes_per_token;
  c.basis = "test";
  return c;
}
