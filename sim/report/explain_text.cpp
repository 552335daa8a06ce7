// `tpsim explain` as text: the lesson read off an ExplainReport (run/explain_layer.cpp builds it).
#include <fmt/format.h>

#include "tpsim/explain.hpp"
#include "tpsim/report.hpp"

namespace tpsim {

std::string explain_text(const ExplainReport& r) {
  std::string out;
  out += fmt::format("One transformer layer of {} under plan {} (tensor parallel over {} GPU{}{}) on {},\n"
                     "{} tokens per micro-batch, forward and backward, as lowered for GPU 0.\n\n",
                     r.model, r.plan, r.tp, r.tp == 1 ? "" : "s", r.sp ? ", sequence parallel" : "", r.topology,
                     r.tokens);

  out += "Weights: how each is split ([in x out], Y = X W)\n";
  for (const auto& w : r.weights)
    out += fmt::format("  {:<24} [{} x {}] -> each GPU holds [{} x {}]: {}\n", w.name, w.rows, w.cols, w.local_rows,
                       w.local_cols, w.how);

  out += fmt::format("\nCommunication: each TP mapping names its forward collective and its backward conjugate\n"
                     "(each collective timed alone on the idle topology at {} fidelity, as tpsim run times it)\n",
                     r.fidelity);
  if (r.collectives.empty()) out += "  none: nothing is split, nothing has to be combined\n";
  for (const char* pass : {"forward", "backward"}) {
    for (const auto& c : r.collectives) {
      if (c.backward != (std::string(pass) == "backward")) continue;
      out += fmt::format("  {:<8} {:<46} {} ({}, {} GPUs) {}  {}\n", pass, c.op, to_string(c.collective), c.instance,
                         c.ranks, format_bytes(double(c.bytes)), format_seconds(c.seconds));
      out += fmt::format("           why: {}\n", c.why);
    }
  }

  out += "\nPer layer\n";
  out += fmt::format("  {:<10}{:>14}{:>16}{:>14}\n", "", "compute", "communication", "collectives");
  out += fmt::format("  {:<10}{:>14}{:>16}{:>14}\n", "forward", format_seconds(r.forward_compute),
                     format_seconds(r.forward_communication), r.forward_collectives);
  out += fmt::format("  {:<10}{:>14}{:>16}{:>14}\n", "backward", format_seconds(r.backward_compute),
                     format_seconds(r.backward_communication), r.backward_collectives);
  out += fmt::format("  total, nothing overlapped      {}\n", format_seconds(r.serial_total));
  out += fmt::format("  simulated (engine, contention) {}  ({} fidelity)\n", format_seconds(r.simulated), r.fidelity);
  out += fmt::format("  activations kept for backward  {} per GPU (memory model, as tpsim run counts them);\n"
                     "                                 the lowered backward reads {} of forward tensors\n",
                     format_bytes(double(r.activation_bytes)), format_bytes(double(r.program_activation_bytes)));
  return out;
}

}  // namespace tpsim
