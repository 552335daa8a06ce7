// Two commands asked the same question give the same answer: one request served alone (its
// prefill, then one decode) takes the time `tpsim run` gives an inference request of that prompt
// (time to first token, time per output token), on the same plan and topology. The serving timer
// simulates the replica's forward at the request's token count and swaps in the attention the
// iteration really has; `run` lowers the prefill and the decode step themselves.
#include <doctest/doctest.h>

#include "relative.hpp"

#include "serve/replica_model.hpp"
#include "tpsim/run.hpp"
#include "tpsim/serving.hpp"

using namespace tpsim;

namespace {

Scenario inference(const std::string& model, int tp, int pp, int64_t prompt) {
  ScenarioRequest q;
  q.model = model;
  q.topology = "dgx-h100";
  q.overrides = {{"plan.tp", std::to_string(tp)}, {"plan.pp", std::to_string(pp)}, {"workload.kind", "inference"},
                 {"workload.batch", "1"}, {"workload.prompt", std::to_string(prompt)}, {"workload.generate", "2"},
                 {"numerics", "off"}};
  return load_scenario(q);
}

// TTFT and TPOT of one request (prompt, 2 output tokens) served alone.
std::pair<double, double> served_alone(const Scenario& s, int64_t prompt) {
  ServingSpec spec;
  spec.scheduler = "static";
  spec.max_batch = 1;
  serving::SimulatedTimer timer(s);
  const ServeResult r = serve(spec, {{0, 0.0, prompt, 2}}, serving::replica_capacity(s, spec), timer);
  const RequestOutcome& o = r.requests[0];
  return {o.ttft(), o.tpot()};
}

}  // namespace

TEST_CASE("one request served alone takes the time tpsim run gives it: prefill and one decode") {
  // 512 and 1536 are shapes the timer simulates (no interpolation); what differs is the prefill's
  // norm and loss kernels on every prompt token (run: on the last one only) and a causal pair
  // count of s(s+1)/2 against s^2/2: under 1%.
  struct Case {
    const char* model;
    int tp, pp;
    int64_t prompt;
  };
  for (const Case c : {Case{"llama2-70b", 8, 1, 512}, Case{"llama2-7b", 2, 1, 1536}, Case{"llama2-13b", 4, 2, 512}}) {
    const std::string model = c.model;
    CAPTURE(model);
    CAPTURE(c.pp);
    const Scenario s = inference(c.model, c.tp, c.pp, c.prompt);
    RunOptions options;
    options.numerics = "off";
    const RunResult run = run_scenario(s, options);
    const auto [ttft, tpot] = served_alone(s, c.prompt);
    CHECK(ttft == rel(run.step->ttft_s, 0.01));
    CHECK(tpot == rel(run.step->tpot_s, 0.01));
  }
}

TEST_CASE("the serving timer's interpolation between simulated shapes stays within 2% of simulating the shape") {
  // Shapes between the simulated ones (1.5x apart): decode-size batches where the GEMMs stream
  // their weights, and prefill-size ones where they are compute-bound and tile quantisation moves
  // the time in steps.
  for (const auto& [model, tp] : {std::pair{"llama2-70b", 8}, std::pair{"llama2-7b", 1}}) {
    CAPTURE(model);
    serving::SimulatedTimer timer(inference(model, tp, 1, 512));
    for (int64_t tokens : {5, 20, 100, 700, 1000, 3000, 5000, 10000}) {
      CAPTURE(tokens);
      const double interpolated = timer.forward(tokens), simulated = timer.forward_simulated(tokens);
      CHECK(interpolated == rel(simulated, 0.02));
    }
  }
}
